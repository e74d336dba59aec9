"""Where the Kodak images are, and how to fetch them when they are not here."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
KODAK_URL = "https://r0k.us/graphics/kodak/kodak/kodim{:02d}.png"  # the suite's long-standing public home
KODAK_PIXEL_SHA256 = REPO / "benchmarks" / "reference" / "kodak-pixel-sha256.txt"


def default_kodak() -> Path | None:
    """--data default: $AECODEC_KODAK, else ../shared/datasets/kodak beside the repo if it exists."""
    if os.environ.get("AECODEC_KODAK"):
        return Path(os.environ["AECODEC_KODAK"])
    fallback = REPO.parent / "shared" / "datasets" / "kodak"
    return fallback if fallback.is_dir() else None


def kodak_images(directory: Path | None, limit: int = 0) -> list[Path]:
    """The images in `directory` (sorted), or a clear error if there are none."""
    if directory is None or not directory.is_dir():
        raise FileNotFoundError(f"Kodak folder {directory} not found (use --data, set AECODEC_KODAK, or --download)")
    images = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".png", ".ppm", ".bmp", ".tif", ".tiff"))
    if not images:
        raise FileNotFoundError(f"no images in {directory}")
    return images[:limit] if limit else images


def pixel_sha256(data: bytes) -> str:
    """SHA-256 of an image file's decoded 8-bit RGB pixels (robust to lossless re-encoding)."""
    with Image.open(io.BytesIO(data)) as image:
        return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def download_kodak(directory: Path) -> Path:
    """Fetch kodim01..24.png into `directory`, each checked against its known pixel SHA-256."""
    expected = {
        fields[1]: fields[0]
        for fields in (line.split() for line in KODAK_PIXEL_SHA256.read_text().splitlines())
        if fields and not fields[0].startswith("#")
    }
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(1, 25):
        name = f"kodim{i:02d}.png"
        target = directory / name
        if target.exists() and pixel_sha256(target.read_bytes()) == expected[name]:
            continue
        with urllib.request.urlopen(KODAK_URL.format(i), timeout=60) as response:
            data = response.read()
        if pixel_sha256(data) != expected[name]:
            raise ValueError(f"{name}: downloaded image does not match its known SHA-256")
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    return directory
