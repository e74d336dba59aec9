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


def icc_profile(description: str = "Test P3 space", gamma: float = 1.8, gray: bool = False) -> bytes:
    """A small, valid ICC v2 display profile that is not sRGB: Display P3's primaries (adapted to
    D50) with a pure power-law tone curve, or a gray one with that curve."""
    import struct

    def fixed(*values: float) -> bytes:  # s15Fixed16Number
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    text = description.encode("ascii") + b"\0"
    tags = [(b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67))]
    tags.append((b"cprt", b"text" + bytes(4) + b"public domain\0"))
    tags.append((b"wtpt", b"XYZ " + bytes(4) + fixed(0.9642, 1.0, 0.8249)))
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    if gray:
        tags.append((b"kTRC", curve))
    else:
        primaries = {
            b"rXYZ": (0.5151, 0.2412, -0.0011),
            b"gXYZ": (0.2920, 0.6922, 0.0419),
            b"bXYZ": (0.1571, 0.0666, 0.7841),
        }
        tags += [(name, b"XYZ " + bytes(4) + fixed(*xyz)) for name, xyz in primaries.items()]
        tags += [(name, curve) for name in (b"rTRC", b"gTRC", b"bTRC")]
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for name, body in tags:
        body += bytes(-len(body) % 4)
        table += name + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = struct.pack(">I", offset + len(data)) + b"test" + bytes([2, 0x10, 0, 0]) + b"mntr"
    header += (b"GRAY" if gray else b"RGB ") + b"XYZ " + bytes(12) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4)
    header += fixed(0.9642, 1.0, 0.8249) + bytes(4 + 16 + 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
