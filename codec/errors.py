"""The errors aecodec reports to its users; each message is one line."""

from __future__ import annotations


class AecError(Exception):
    """Base class of every error aecodec reports without a traceback."""


class FormatError(AecError):
    """An .aec file is malformed, corrupt, truncated or from an unknown version."""


class UnsupportedImageError(AecError):
    """An input image aecodec cannot encode without losing information."""


class WeightsError(AecError):
    """Weights are missing, unknown or do not match their model card."""


class AecWarning(UserWarning):
    """Something the user should know, though the operation succeeded (e.g. 16 → 8 bits)."""
