"""Peak memory and time of encoding and decoding 4K and 8K images on this machine.

    python -m benchmarks.large_images [--data DIR] [--models A,B] [--out benchmarks/results]

The test images are mosaics of Kodak photos (mirrored where they meet, so the
content stays photographic): 3840×2160 (4K UHD) and 8000×8000 (64 Mpixel).
Each model and size runs in a fresh process (benchmarks/memory.py), which
reports its peak resident memory (VmHWM) over one encode and one decode at the
highest shipped rate point, next to its baseline after imports and loading
the weights. The target (issue 5) is under 3 GB at 8000×8000 on the CPU.
Writes (overwrites) benchmarks/results/large-images.json with the models measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import memory
from benchmarks.data import REPO, default_kodak, kodak_images
from benchmarks.harness import _cpu_name

SIZES = {"4K (3840x2160)": (2160, 3840), "8K (8000x8000)": (8000, 8000)}
MODELS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "minnen2020-channelwise")


def mosaic(images: list[Path], height: int, width: int) -> np.ndarray:
    """A height × width RGB mosaic of landscape-oriented Kodak images, mirrored alternately."""
    tiles = []
    for path in images:
        array = np.asarray(Image.open(path).convert("RGB"))
        tiles.append(array if array.shape[0] <= array.shape[1] else array.transpose(1, 0, 2))
    tile_h, tile_w = tiles[0].shape[:2]
    out = np.empty((height, width, 3), dtype=np.uint8)
    k = 0
    for top in range(0, height, tile_h):
        for left in range(0, width, tile_w):
            tile = tiles[k % len(tiles)][:, ::-1] if (top // tile_h + left // tile_w) % 2 else tiles[k % len(tiles)]
            k += 1
            h, w = min(tile_h, height - top), min(tile_w, width - left)
            out[top : top + h, left : left + w] = tile[:h, :w]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.large_images", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_kodak(), help="Kodak folder")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated (default %(default)s)")
    args = parser.parse_args(argv)
    images = kodak_images(args.data)
    report: dict = {"cpu": _cpu_name(), "device": args.device, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (height, width) in SIZES.items():
            path = Path(tmp) / f"{height}x{width}.png"
            Image.fromarray(mosaic(images, height, width)).save(path, compress_level=1)
            for model in args.models.split(","):
                result = memory.peak_memory("ours", model, path, args.device, timeout=1800)
                result["bpp"] = 8 * result["bytes"] / (height * width) if "bytes" in result else None
                report["results"][f"{model} {label}"] = result
                print(label, model, json.dumps(result), file=sys.stderr)
            for name in ("JPEG 4:2:0",):
                report["results"][f"{name} {label}"] = memory.peak_memory("classical", name, path, timeout=1800)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large-images.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
