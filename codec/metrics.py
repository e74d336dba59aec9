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


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM (Wang, Simoncelli, Bovik 2003) on uint8 RGB, data range 255, via pytorch-msssim.

    The five-scale, 11×11-window form needs at least 161 pixels on each side;
    smaller images give NaN.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(reference.shape[:2]) < 161:
        return math.nan
    x, y = (torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None] for a in (reference, decoded))
    return float(_ms_ssim(x, y, data_range=255))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a decibel scale, −10·log10(1 − MS-SSIM), as plotted in learned-compression papers."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)
