"""Measure the shipped rate points on Kodak through the real codec path.

    python -m benchmarks.kodak [--data DIR] [--limit N] [--update-cards] [--out FILE]

For every installed rate point and every image: encode with codec.encode,
count the file's bytes, decode with codec.decode, and compute PSNR on the
decoded 8-bit RGB image. Encode and decode wall times are split into entropy
coding (time inside codec.entropy.encode/decode) and the rest (transforms,
padding, container). Results go to a JSON file shaped like CompressAI's result
files, one entry per rate point, with per-image rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import codec
from benchmarks import jpeg
from benchmarks.bdrate import bd_rate
from codec import entropy, weights
from codec.image import open_image, to_array
from codec.metrics import bits_per_pixel, psnr

REPO = Path(__file__).resolve().parent.parent


def default_kodak() -> Path | None:
    if os.environ.get("AECODEC_KODAK"):
        return Path(os.environ["AECODEC_KODAK"])
    fallback = REPO.parent / "shared" / "datasets" / "kodak"
    return fallback if fallback.is_dir() else None


def kodak_images(directory: Path | None, limit: int = 0) -> list[Path]:
    if directory is None or not directory.is_dir():
        raise SystemExit(f"benchmark: Kodak folder {directory} not found (use --data or set AECODEC_KODAK)")
    images = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".png", ".ppm", ".bmp", ".tif", ".tiff"))
    if not images:
        raise SystemExit(f"benchmark: no images in {directory}")
    return images[:limit] if limit else images


class EntropyTimer:
    """Accumulates the wall time spent inside codec.entropy.encode/decode."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._encode, self._decode = entropy.encode, entropy.decode

    def __enter__(self) -> EntropyTimer:
        def timed(function):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start

            return wrapper

        entropy.encode, entropy.decode = timed(self._encode), timed(self._decode)
        return self

    def __exit__(self, *exc) -> None:
        entropy.encode, entropy.decode = self._encode, self._decode


def measure(point: weights.RatePoint, images: list[Path], coder: str = "range") -> dict:
    quality = 1 + 99 * np.log(point.lmbda / 0.0018) / np.log(100)  # inverse of λ(q): selects this point
    rows = []
    for path in tqdm(images, desc=f"{point.model} λ={point.lmbda:g}", leave=False, file=sys.stderr):
        image = open_image(path)
        reference, _ = to_array(image)
        with EntropyTimer() as enc_entropy:
            start = time.perf_counter()
            data = codec.encode(image, quality=float(np.clip(quality, 1, 100)), model=point.model, coder=coder)
            enc_seconds = time.perf_counter() - start
        assert codec.read_header(data).rate == np.float32(point.lmbda)
        with EntropyTimer() as dec_entropy:
            start = time.perf_counter()
            decoded = np.asarray(codec.decode(data).convert("RGB"))
            dec_seconds = time.perf_counter() - start
        height, width = reference.shape[:2]
        rows.append({
            "image": path.name,
            "bytes": len(data),
            "bpp": bits_per_pixel(len(data), height, width),
            "psnr": psnr(reference, decoded),
            "encode_s": enc_seconds,
            "encode_entropy_s": enc_entropy.seconds,
            "decode_s": dec_seconds,
            "decode_entropy_s": dec_entropy.seconds,
        })  # fmt: skip
    mean = {k: statistics.fmean(r[k] for r in rows) for k in ("bpp", "psnr")}
    median = {
        k: statistics.median(r[k] for r in rows)
        for k in ("encode_s", "encode_entropy_s", "decode_s", "decode_entropy_s")
    }
    return {
        "model": point.model,
        "lambda": point.lmbda,
        "sha256": point.card["sha256"],
        **mean,
        "median_times": median,
        "images": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kodak", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=default_kodak(),
        help="Kodak folder (default $AECODEC_KODAK or ../shared/datasets/kodak)",
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--model", default=None, help="only this model")
    parser.add_argument(
        "--update-cards", action="store_true", help="write the measured Kodak means into the model cards"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kodak-shipped.json")
    parser.add_argument("--readme", action="store_true", help="regenerate the shipped-models table in README.md")
    parser.add_argument("--no-jpeg", action="store_true", help="skip the JPEG 4:2:0 curve and BD-rates")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    images = kodak_images(args.data, args.limit)
    results = [measure(p, images) for p in weights.rate_points(args.model)]
    comparisons = {} if args.no_jpeg else compare(results, jpeg.measure(images))
    report = {
        "name": "aecodec shipped rate points",
        "description": f"{len(images)} Kodak images, bpp from .aec file bytes, PSNR on decoded 8-bit RGB",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "results": results,
        **comparisons,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for r in results:
        t = r["median_times"]
        print(
            f"{r['model']:<22} λ={r['lambda']:<7g} {r['bpp']:.4f} bpp  {r['psnr']:.2f} dB  "
            f"encode {t['encode_s'] * 1e3:.0f} ms (entropy {t['encode_entropy_s'] * 1e3:.0f})  "
            f"decode {t['decode_s'] * 1e3:.0f} ms (entropy {t['decode_entropy_s'] * 1e3:.0f})"
        )
        if args.update_cards and len(images) == 24:
            point = next(p for p in weights.rate_points(r["model"]) if p.lmbda == r["lambda"])
            weights.update_card(
                point.card_path,
                kodak={"images": 24, "bpp": round(r["bpp"], 4), "psnr": round(r["psnr"], 3), "coder": "range"},
            )
    for model, rates in comparisons.get("bd_rate_percent", {}).items():
        print(f"BD-rate of {model}: " + ", ".join(f"{v:+.1f} % vs {k}" for k, v in rates.items()))
    if args.readme:
        write_readme_table(results, comparisons, REPO / "README.md")


def compare(results: list[dict], jpeg_curve: dict) -> dict:
    """BD-rate of each model's curve against JPEG measured now and the published CompressAI curve."""
    published = json.loads((REPO / "benchmarks" / "reference" / "kodak-published.json").read_text())
    rates: dict[str, dict[str, float]] = {}
    for model in sorted({r["model"] for r in results}):
        points = [r for r in results if r["model"] == model]
        if len(points) < 2:
            continue
        bpp, psnr_db = [r["bpp"] for r in points], [r["psnr"] for r in points]
        anchors = {"JPEG 4:2:0 (this run)": (jpeg_curve["bpp"], jpeg_curve["psnr"])}
        if model in published:
            anchors[f"CompressAI {model} (published)"] = (published[model]["bpp"], published[model]["psnr"])
        rates[model] = {}
        for name, (anchor_bpp, anchor_psnr) in anchors.items():
            try:
                rates[model][name] = bd_rate(anchor_bpp, anchor_psnr, bpp, psnr_db)
            except ValueError:
                continue  # no PSNR overlap
    return {"jpeg_420": jpeg_curve, "bd_rate_percent": rates}


README_BEGIN, README_END = "<!-- shipped-models:begin -->", "<!-- shipped-models:end -->"


def write_readme_table(results: list[dict], comparisons: dict, readme: Path) -> None:
    """Replace the table between the README's markers with these results."""
    lines = [
        README_BEGIN,
        "| model | λ | N | M | `-q` range | Kodak bpp | Kodak PSNR (dB) | encode / decode (ms, median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        point = next(p for p in weights.rate_points(r["model"]) if p.lmbda == r["lambda"])
        low, high = quality_range(point)
        t = r["median_times"]
        lines.append(
            f"| {r['model']} | {r['lambda']:g} | {point.card['N']} | {point.card['M']} | {low}–{high} | "
            f"{r['bpp']:.3f} | {r['psnr']:.2f} | {t['encode_s'] * 1e3:.0f} / {t['decode_s'] * 1e3:.0f} |"
        )
    rates = comparisons.get("bd_rate_percent", {})
    if rates:
        lines += ["", "| model | BD-rate (pchip, PSNR) against |", "|---|---|"]
        for model, against in rates.items():
            lines.append(f"| {model} | " + "; ".join(f"{v:+.1f} % vs {k}" for k, v in against.items()) + " |")
    lines.append(README_END)
    text = readme.read_text()
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    readme.write_text(text[:start] + "\n".join(lines) + text[end:])


def quality_range(point: weights.RatePoint) -> tuple[int, int]:
    """The integer -q values that select this rate point."""
    chosen = [q for q in range(1, 101) if codec.api.select_rate_point(point.model, q) == point]
    return min(chosen), max(chosen)


if __name__ == "__main__":
    main()
