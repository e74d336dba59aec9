"""Validation during training with real coding: the bytes of actual .aec files and the
PSNR of their decoded 8-bit images, through the same data path as the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codec import api, container
from codec.metrics import bits_per_pixel, psnr
from codec.models import ARCHITECTURES, LatentCodecModel


def load_images(folder: Path, limit: int = 0) -> list[np.ndarray]:
    """The PNG images of `folder` (sorted) as uint8 RGB arrays."""
    paths = sorted(folder.glob("*.png"))[: limit or None]
    if not paths:
        raise FileNotFoundError(f"no validation images (*.png) in {folder}")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


@torch.no_grad()
def evaluate(model: LatentCodecModel, lmbda: float, images: list[np.ndarray]) -> dict[str, float]:
    """Mean bpp (real file bytes) and PSNR (decoded 8-bit RGB) at rate λ of a copy of `model` with
    fresh CDF tables."""
    net = ARCHITECTURES[model.name](model.N, model.M, model.lambdas)
    net.load_weights({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    net.eval().update_tables()
    bpps, psnrs = [], []
    for array in images:
        data = api.encode_with(net, array, "RGB", bytes(8), lmbda)
        header, streams = container.unpack(data)
        decoded = api.decode_with(net, header, streams)
        bpps.append(bits_per_pixel(len(data), *array.shape[:2]))
        psnrs.append(psnr(array, decoded))
    mse = float(np.mean([255**2 / 10 ** (p / 10) for p in psnrs]))
    return {
        "bpp": float(np.mean(bpps)),
        "psnr": float(np.mean(psnrs)),
        "psnr_of_mean_mse": 10 * math.log10(255**2 / mse),
    }
