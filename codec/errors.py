"""The errors aecodec reports to its users; each message is one line."""

from __future__ import annotations


class AecError(Exception):
    """Base class of every error aecodec reports without a traceback."""


class FormatError(AecError):
    """An .aec file is malformed, corrupt, truncated or from an unknown version."""


class UnsupportedImageError(AecError):
    """An input image aecodec cannot encode without losing information."""


class MetadataError(AecError, ValueError):
    """An ICC profile, EXIF or XMP given to the encoder cannot be stored; `kind` says which
    ('icc', 'exif' or 'xmp'). What an image carries itself is dropped with a warning instead."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WeightsError(AecError):
    """Weights are missing, unknown or do not match their model card."""


class AecWarning(UserWarning):
    """Something the user should know, though the operation succeeded (e.g. 16 → 8 bits)."""
