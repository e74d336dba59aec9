"""Distortion measured the way codecs are compared: on decoded 8-bit images."""

from __future__ import annotations

import math

import numpy as np


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (peak 255)."""
    if reference.shape != decoded.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {decoded.shape}")
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """Rate from a file's real size."""
    return num_bytes * 8 / (height * width)
