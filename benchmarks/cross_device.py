"""Files made on one device decode on another: GPU against CPU, measured on Kodak.

    python -m benchmarks.cross_device [--data DIR] [--limit N] [--devices cuda,cpu] [--out benchmarks/results]

For every installed model (its rate point at the default quality) and Kodak
image, the image is encoded on each device, and every file is decoded on each
device. The entropy parameters come from integer-exact networks
(codec/integer.py), so every file must decode, on every device, to the
latents its encoder coded; a mismatch would show as a FormatError (the end
marker of a stream) or as a different image. What may differ is float
arithmetic outside the entropy path: g_a (so the two devices' files need not
be the same bytes), and g_s and the channel-wise model's residual prediction
(so pixels decoded on different devices may differ by a level or so).

Reported per model: files that decoded on every device (must be all),
files byte-identical across encoders, and between decodes of the same file on
different devices the largest pixel difference, the fraction of differing
pixels and the PSNR between them; plus the median encode and decode time per
device and, on CUDA, the peak GPU memory of a 4K (3840×2160) encode + decode.
Writes benchmarks/results/cross-device.json. Needs a GPU for its purpose
(issue 5); `--devices cpu,cpu` runs the same checks on the CPU alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

import codec
from benchmarks.data import REPO, default_kodak, kodak_images
from benchmarks.harness import _cpu_name
from benchmarks.large_images import mosaic
from codec import api, weights
from codec.errors import FormatError
from codec.metrics import psnr

T = TypeVar("T")


def timed(function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`function`'s result and its wall time in seconds."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def compare_model(model: str, images: list[np.ndarray], devices: list[str]) -> dict:
    """Encode every image on every device and decode every file on every device."""
    report = {"files": 0, "decoded_everywhere": 0, "files_identical_across_encoders": 0, "errors": []}
    pixel_diffs, differing, psnrs = [], [], []
    times = {d: {"encode_s": [], "decode_s": []} for d in devices}
    for index, array in enumerate(images):
        files = []
        for device in devices:
            data, seconds = timed(codec.encode, array, model=model, device=device)
            files.append((device, data))
            times[device]["encode_s"].append(seconds)
        report["files_identical_across_encoders"] += len({data for _, data in files}) == 1
        for encoder, data in files:
            report["files"] += 1
            decoded = []
            for device in devices:
                try:
                    image, seconds = timed(codec.decode, data, device=device)
                except FormatError as error:
                    report["errors"].append(f"image {index}, encoded on {encoder}, decoded on {device}: {error}")
                    continue
                decoded.append(np.asarray(image))
                times[device]["decode_s"].append(seconds)
            if len(decoded) < len(devices):
                continue
            report["decoded_everywhere"] += 1
            first, *others = decoded
            for other in others:
                diff = np.abs(first.astype(np.int16) - other.astype(np.int16))
                pixel_diffs.append(int(diff.max()))
                differing.append(float(np.mean(diff > 0)))
                psnrs.append(psnr(first, other))
    report["max_pixel_difference"] = max(pixel_diffs, default=0)
    report["fraction_of_pixels_differing"] = statistics.fmean(differing) if differing else 0.0
    finite = [p for p in psnrs if np.isfinite(p)]
    report["min_psnr_between_devices"] = min(finite) if finite else None  # None: identical pixels
    report["median_ms"] = {
        d: {k.replace("_s", "_ms"): 1000 * statistics.median(v) for k, v in t.items() if v} for d, t in times.items()
    }
    return report


def weights_used(model: str) -> dict[str, str]:
    """The weights file (and its SHA-256) that `model` codes the default quality with."""
    card = api.select_rate_point(model, api.DEFAULT_QUALITY).card
    return {"weights": card["weights"], "sha256": card["sha256"]}


def environment(devices: list[str]) -> dict[str, str]:
    """What ran the checks: torch's and Python's versions and each device's name."""
    names = {
        d: torch.cuda.get_device_name(d) if d.startswith("cuda") else f"{_cpu_name()}, {os.cpu_count()} cores"
        for d in devices
    }
    return {"torch": torch.__version__, "python": platform.python_version(), **names}


def peak_gpu_memory_4k(model: str, images: list[Path], device: str) -> dict:
    """Peak GPU memory (torch's allocator) of one 4K encode + decode on `device`."""
    array = mosaic(images, 2160, 3840)
    torch.cuda.reset_peak_memory_stats(device)
    data = codec.encode(array, model=model, device=device)
    after_encode = torch.cuda.max_memory_allocated(device) / 2**20
    codec.decode(data, device=device)
    return {"peak_after_encode_mib": after_encode, "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cross_device", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_kodak(), help="Kodak folder")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--devices", default="cuda,cpu", help="comma-separated, at least two (default %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    devices = args.devices.split(",")
    if len(devices) < 2:
        parser.error("--devices needs at least two devices")
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        raise SystemExit("cross_device: CUDA is not available here; use --devices cpu,cpu to run the checks on the CPU")
    paths = kodak_images(args.data, args.limit)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    models = sorted({p.model for p in weights.rate_points()})
    report: dict = {
        "devices": devices,
        "environment": environment(devices),
        "images": len(images),
        "quality": api.DEFAULT_QUALITY,
        "weights": {m: weights_used(m) for m in models},
        "models": {},
    }
    for model in models:
        result = compare_model(model, images, devices)
        for device in devices:
            if device.startswith("cuda"):
                result[f"4k_{device}"] = peak_gpu_memory_4k(model, kodak_images(args.data), device)
        report["models"][model] = result
        print(model, json.dumps(result), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cross-device.json").write_text(json.dumps(report, indent=1) + "\n")
    failed = sum(len(r["errors"]) for r in report["models"].values())
    print(f"cross_device: {failed} files failed to decode on some device", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
