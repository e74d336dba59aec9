"""Bjøntegaard delta rate (BD-rate) between two rate–distortion curves.

Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
VCEG-M33, 2001, with piecewise-cubic Hermite (pchip) interpolation instead of a
cubic polynomial fit, as in later VCEG/JVET practice: log10(bpp) is
interpolated as a function of PSNR for each curve, using all points, and the
difference is averaged over the two curves' overlapping PSNR interval.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad
from scipy.interpolate import PchipInterpolator


def bd_rate(reference_bpp, reference_psnr, test_bpp, test_psnr) -> float:
    """Average bitrate change of `test` against `reference` at equal PSNR, in percent.

    Negative means the test curve needs fewer bits. Points are sorted by PSNR;
    each curve needs at least two points and the curves must overlap in PSNR.
    """
    curves = []
    for bpp, psnr in ((reference_bpp, reference_psnr), (test_bpp, test_psnr)):
        bpp, psnr = np.asarray(bpp, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
        order = np.argsort(psnr)
        psnr, log_rate = psnr[order], np.log10(bpp[order])
        keep = np.concatenate([[True], np.diff(psnr) > 0])  # pchip needs strictly increasing x
        if keep.sum() < 2:
            raise ValueError("a curve needs at least two distinct PSNR points")
        curves.append((psnr[keep], PchipInterpolator(psnr[keep], log_rate[keep])))
    low = max(curves[0][0][0], curves[1][0][0])
    high = min(curves[0][0][-1], curves[1][0][-1])
    if low >= high:
        raise ValueError("the curves do not overlap in PSNR")
    areas = [quad(interpolant, low, high, limit=200)[0] for _, interpolant in curves]
    mean_log_ratio = (areas[1] - areas[0]) / (high - low)
    return (10**mean_log_ratio - 1) * 100
