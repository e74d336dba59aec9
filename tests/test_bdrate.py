import numpy as np
import pytest

from benchmarks.bdrate import bd_rate


def test_a_curve_needing_ten_percent_fewer_bits_everywhere_is_minus_ten_percent():
    bpp = np.array([0.2, 0.4, 0.8, 1.6])
    psnr = np.array([27.0, 30.0, 33.5, 37.0])
    assert bd_rate(bpp, psnr, 0.9 * bpp, psnr) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(bpp, psnr, bpp, psnr) == pytest.approx(0.0, abs=1e-9)


def test_only_the_overlapping_psnr_interval_counts():
    bpp = np.array([0.2, 0.4, 0.8, 1.6])
    psnr = np.array([27.0, 30.0, 33.5, 37.0])
    longer_bpp = np.append(1.2 * bpp, 100.0)  # a far-away extra point outside the overlap
    longer_psnr = np.append(psnr, 60.0)
    assert bd_rate(bpp, psnr, longer_bpp[:-1], longer_psnr[:-1]) == pytest.approx(20.0, abs=1e-6)
    assert bd_rate(bpp, psnr, longer_bpp, longer_psnr) == pytest.approx(20.0, abs=0.5)


def test_disjoint_curves_are_an_error():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate([0.1, 0.2], [20, 21], [1.0, 2.0], [30, 31])
