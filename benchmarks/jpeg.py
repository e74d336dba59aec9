"""JPEG through Pillow (libjpeg-turbo), measured like our codec: file bytes and decoded 8-bit PSNR."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from codec.metrics import bits_per_pixel, psnr

QUALITIES = tuple(range(5, 100, 5))


def measure(images: list[Path], subsampling: str = "4:2:0", qualities: tuple[int, ...] = QUALITIES) -> dict:
    """Mean bpp and PSNR over `images` for each JPEG quality."""
    references = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    bpp, quality_psnr = [], []
    for quality in qualities:
        rates, distortions = [], []
        for reference in references:
            buffer = io.BytesIO()
            Image.fromarray(reference).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            rates.append(bits_per_pixel(buffer.tell(), *reference.shape[:2]))
            distortions.append(psnr(reference, decoded))
        bpp.append(statistics.fmean(rates))
        quality_psnr.append(statistics.fmean(distortions))
    return {"name": f"JPEG {subsampling} (Pillow)", "quality": list(qualities), "bpp": bpp, "psnr": quality_psnr}
