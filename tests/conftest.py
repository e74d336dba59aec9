"""Shared fixtures: tiny exported models, so format and CLI tests run in seconds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import compressai  # noqa: F401

from codec import weights
from codec.models import ARCHITECTURES

TINY_LAMBDAS = (0.004, 0.03)


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """Untrained N=8, M=12 models of every architecture at two λ, exported with CDF tables."""
    directory = tmp_path_factory.mktemp("weights")
    for arch in ARCHITECTURES.values():
        for i, lmbda in enumerate(TINY_LAMBDAS):
            torch.manual_seed(i)
            weights.export(arch(8, 12), lmbda, directory, {"training": {"note": "untrained test model"}})
    return directory


@pytest.fixture
def tiny_weights(tiny_weights_dir, monkeypatch) -> Path:
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))
    return tiny_weights_dir


def natural_image(height: int = 96, width: int = 128) -> np.ndarray:
    """A crop of the bundled sample photo."""
    from PIL import Image

    with Image.open(Path(__file__).resolve().parent.parent / "assets" / "sample.png") as image:
        return np.asarray(image.convert("RGB"))[100 : 100 + height, 150 : 150 + width].copy()


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mild noise, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width, 1), yy * 255 / max(height, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def icc_profile(description: str = "Test P3 space") -> bytes:
    """A valid RGB ICC profile that is not sRGB: littlecms's sRGB with another 13-letter name."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert len(description) == 13
    return srgb.replace("sRGB built-in".encode("utf-16-be"), description.encode("utf-16-be"))
