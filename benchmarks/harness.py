"""The Kodak benchmark: our shipped models and the classical codecs, in one run.

    aecodec bench [--data DIR] [--limit N] [--out benchmarks/results] [--readme]

Every point is measured the same way for every codec: encode the image, count
the file's bytes (bpp), decode it, and compare the decoded 8-bit RGB image with
the original (PSNR, MS-SSIM with data range 255), timing encode and decode.
For our codec the path is exactly the CLI's (codec.encode / codec.decode), and
the time inside entropy coding is reported separately.

Outputs, in --out:
  <codec>.json          one per codec, in CompressAI's result schema
                        (name, description, results.{bpp, psnr-rgb, ms-ssim-rgb,
                        encoding_time, decoding_time}), means over the images
  kodak-per-image.csv   every (codec, setting, image) measurement
  summary.json          machine, BD-rates, PSNR at 0.25/0.5/1.0 bpp, speed
"""

from __future__ import annotations

import csv
import json
import math
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.interpolate import PchipInterpolator
from tqdm import tqdm

import codec
from benchmarks import classical, memory
from benchmarks.bdrate import bd_rate
from benchmarks.data import REPO
from codec import entropy, weights
from codec.metrics import bits_per_pixel, ms_ssim, psnr

ANCHOR = "JPEG 4:2:0"
MEASURED_ANCHORS = (ANCHOR, "AVIF 4:4:4")  # BD-rates against these codecs as measured in the same run
PUBLISHED = REPO / "benchmarks" / "reference" / "kodak-published.json"
RATES_OF_INTEREST = (0.25, 0.5, 1.0)


@dataclass
class Curve:
    """One codec's rate–distortion curve: a list of settings, each measured on every image."""

    name: str
    description: str
    rows: list[dict] = field(default_factory=list)

    def means(self) -> dict[str, list[float]]:
        settings = sorted({r["setting"] for r in self.rows}, key=lambda s: (isinstance(s, str), s))
        out: dict[str, list[float]] = {
            k: [] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
        }
        for setting in settings:
            rows = [r for r in self.rows if r["setting"] == setting]
            out["bpp"].append(statistics.fmean(r["bpp"] for r in rows))
            out["psnr-rgb"].append(statistics.fmean(r["psnr"] for r in rows))
            out["ms-ssim-rgb"].append(statistics.fmean(r["ms_ssim"] for r in rows))
            out["encoding_time"].append(statistics.fmean(r["encode_s"] for r in rows))
            out["decoding_time"].append(statistics.fmean(r["decode_s"] for r in rows))
        return out

    def compressai_json(self) -> dict:
        return {"name": self.name, "description": self.description, "results": self.means()}


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


VARIABLE_RATE_SETTINGS = 8  # λ values swept, log-spaced, over a variable-rate model's range


def quality_for_lambda(lmbda: float) -> float:
    """The -q value that asks for λ (the inverse of λ(q), clipped to 1..100)."""
    q = 1 + 99 * math.log(lmbda / codec.api.LAMBDA_MIN) / math.log(codec.api.LAMBDA_MAX / codec.api.LAMBDA_MIN)
    return float(np.clip(q, 1, 100))


def settings_of(point: weights.RatePoint) -> list[float]:
    """The λ a benchmark codes with: a fixed rate point's own, or a sweep of a variable-rate range."""
    if not point.variable_rate:
        return [point.lmbda]
    low, high = math.log(point.lambdas[0]), math.log(point.lambdas[-1])
    return [math.exp(low + (high - low) * i / (VARIABLE_RATE_SETTINGS - 1)) for i in range(VARIABLE_RATE_SETTINGS)]


def quality_for(point: weights.RatePoint) -> float:
    """A -q value that selects this rate point (a variable-rate one: the middle of its range)."""
    settings = settings_of(point)
    return quality_for_lambda(math.sqrt(settings[0] * settings[-1]))


def coded_points(model: str) -> list[weights.RatePoint]:
    """The rate points the CLI codes `model` with: its variable-rate weights if any, else all."""
    points = weights.rate_points(model)
    return [p for p in points if p.variable_rate][:1] or points


def measure_ours(model: str, images: list[Path], device: str, bar: tqdm) -> Curve:
    points = coded_points(model)
    kind = "variable-rate model" if points[0].variable_rate else f"{len(points)} shipped rate points"
    curve = Curve(f"aecodec {model}", f"aecodec {codec.__version__}, {kind}, range coder")
    for point, lmbda in ((p, lmbda) for p in points for lmbda in settings_of(p)):
        quality = quality_for_lambda(lmbda)
        weights.load(point, device)  # load (and check) the weights before timing
        for path, reference in _load(images):
            with EntropyTimer() as enc_entropy:
                start = time.perf_counter()
                data = codec.encode(reference, quality=quality, model=model, device=device)
                encode_s = time.perf_counter() - start
            if not math.isclose(codec.read_header(data).rate, lmbda, rel_tol=1e-5):
                raise RuntimeError(f"quality {quality} did not select λ={lmbda}")
            with EntropyTimer() as dec_entropy:
                start = time.perf_counter()
                decoded = np.asarray(codec.decode(data, device=device))
                decode_s = time.perf_counter() - start
            row = _row(path, lmbda, data, reference, decoded, encode_s, decode_s)
            row |= {"encode_entropy_s": enc_entropy.seconds, "decode_entropy_s": dec_entropy.seconds}
            curve.rows.append(row)
            bar.update()
    return curve


def measure_classical(codec_: classical.ClassicalCodec, images: list[Path], bar: tqdm) -> Curve:
    curve = Curve(codec_.name, codec_.description)
    for setting in codec_.settings:
        for path, reference in _load(images):
            image = Image.fromarray(reference)
            start = time.perf_counter()
            data = codec_.encode(image, setting)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decoded = np.asarray(codec_.decode(data))
            decode_s = time.perf_counter() - start
            curve.rows.append(_row(path, setting, data, reference, decoded, encode_s, decode_s))
            bar.update()
    return curve


_CACHE: dict[Path, np.ndarray] = {}


def _load(images: list[Path]):
    for path in images:
        if path not in _CACHE:
            with Image.open(path) as image:
                _CACHE[path] = np.asarray(image.convert("RGB"))
        yield path, _CACHE[path]


def _row(path, setting, data, reference, decoded, encode_s, decode_s) -> dict:
    height, width = reference.shape[:2]
    return {
        "image": path.name,
        "setting": setting,
        "bytes": len(data),
        "bpp": bits_per_pixel(len(data), height, width),
        "psnr": psnr(reference, decoded),
        "ms_ssim": ms_ssim(reference, decoded),
        "encode_s": encode_s,
        "decode_s": decode_s,
    }


def psnr_at(bpp: list[float], psnr_db: list[float], rate: float) -> float | None:
    """PSNR at a given bpp, interpolated (pchip over log bpp); None outside the measured range."""
    order = np.argsort(bpp)
    log_rate = np.log10(np.asarray(bpp)[order])
    values = np.asarray(psnr_db)[order]
    keep = np.concatenate([[True], np.diff(log_rate) > 0])
    if keep.sum() < 2 or not log_rate[keep][0] <= math.log10(rate) <= log_rate[keep][-1]:
        return None
    return float(PchipInterpolator(log_rate[keep], values[keep])(math.log10(rate)))


def published_curves() -> dict[str, tuple[list[float], list[float]]]:
    """(bpp, PSNR) of each published reference curve, named "<curve> (published)"."""
    published = {k: v for k, v in json.loads(PUBLISHED.read_text()).items() if isinstance(v, dict)}
    return {f"{k} (published)": (v["bpp"], v["psnr"]) for k, v in published.items()}


def summarize(curves: list[Curve]) -> dict:
    """BD-rates against JPEG 4:2:0 and AVIF 4:4:4 (this run) and the published curves, and PSNR at fixed rates."""
    measured = {c.name: (c.means()["bpp"], c.means()["psnr-rgb"]) for c in curves}
    anchors = {f"{name} (this run)": measured.get(name) for name in MEASURED_ANCHORS}
    anchors |= published_curves()
    table = {}
    for name, (bpp, psnr_db) in measured.items():
        entry = {"psnr_at_bpp": {str(r): psnr_at(bpp, psnr_db, r) for r in RATES_OF_INTEREST}, "bd_rate_percent": {}}
        for anchor, curve in anchors.items():
            if curve is None or anchor.startswith(name):
                continue
            try:
                entry["bd_rate_percent"][anchor] = bd_rate(curve[0], curve[1], bpp, psnr_db) if len(bpp) > 1 else None
            except ValueError:
                entry["bd_rate_percent"][anchor] = None  # no PSNR overlap
        table[name] = entry
    return table


def speed(curves: list[Curve]) -> dict:
    """Median per-image encode/decode milliseconds, with entropy coding split out for our models."""
    out = {}
    for curve in curves:
        rows = curve.rows
        entry = {"encode_ms": 1e3 * statistics.median(r["encode_s"] for r in rows),
                 "decode_ms": 1e3 * statistics.median(r["decode_s"] for r in rows)}  # fmt: skip
        if "encode_entropy_s" in rows[0]:
            entry["encode_entropy_ms"] = 1e3 * statistics.median(r["encode_entropy_s"] for r in rows)
            entry["decode_entropy_ms"] = 1e3 * statistics.median(r["decode_entropy_s"] for r in rows)
        out[curve.name] = entry
    return out


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def update_model_cards(curves: list[Curve], summary: dict) -> None:
    """Write each rate point's Kodak means (all 24 images) into its model card, and the BD-rates and
    PSNR at fixed rates of the model's whole curve, from the same run."""
    for point in weights.rate_points():
        ours = [r for c in curves if c.name == f"aecodec {point.model}" for r in c.rows]
        entry = summary["codecs"].get(f"aecodec {point.model}")
        if entry and len({r["image"] for r in ours}) == 24:
            weights.update_card(
                point.card_path,
                kodak_curve={
                    "what": "the model's Kodak curve (all its installed rate points), measured by aecodec bench",
                    "psnr_at_bpp": {k: None if v is None else round(v, 3) for k, v in entry["psnr_at_bpp"].items()},
                    "bd_rate_percent": {k: round(v, 2) for k, v in entry["bd_rate_percent"].items() if v is not None},
                },
            )
        if point.variable_rate:
            per_setting = [[r for r in ours if r["setting"] == lmbda] for lmbda in settings_of(point)]
            if all(len(rows) == 24 for rows in per_setting):
                kodak = {"images": 24, "lambda": [round(lmbda, 6) for lmbda in settings_of(point)]}
                for key, digits in (("bpp", 4), ("psnr", 3), ("ms_ssim", 5)):
                    kodak[key] = [round(statistics.fmean(r[key] for r in rows), digits) for rows in per_setting]
                kodak["measured_with"] = "aecodec bench (bpp from .aec file bytes, PSNR on decoded 8-bit RGB)"
                weights.update_card(point.card_path, kodak=kodak)
            continue
        rows = [r for r in ours if r["setting"] == point.lmbda]
        if len(rows) == 24:
            kodak = {
                "images": 24,
                "bpp": round(statistics.fmean(r["bpp"] for r in rows), 4),
                "psnr": round(statistics.fmean(r["psnr"] for r in rows), 3),
                "ms_ssim": round(statistics.fmean(r["ms_ssim"] for r in rows), 5),
                "coder": "range",
                "measured_with": "aecodec bench (bpp from .aec file bytes, PSNR on decoded 8-bit RGB)",
            }
            weights.update_card(point.card_path, kodak=kodak)


README_BEGIN, README_END = "<!-- kodak-results:begin -->", "<!-- kodak-results:end -->"


def readme_table(summary: dict) -> str:
    """The README's results section, generated from a summary (never typed by hand)."""
    codecs = summary["codecs"]
    anchors = sorted({a for entry in codecs.values() for a in entry["bd_rate_percent"]})
    anchors = [a for a in anchors if "this run" in a or a.startswith(("bmshj2018", "BPG", "minnen2020"))]
    head = ["codec", *[f"PSNR @ {r} bpp" for r in RATES_OF_INTEREST], *[f"BD-rate vs {a}" for a in anchors]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(value, fmt):
        return "–" if value is None else format(value, fmt)

    for name, entry in codecs.items():
        psnrs = [cell(entry["psnr_at_bpp"][str(r)], ".2f") for r in RATES_OF_INTEREST]
        rates = [
            cell(entry["bd_rate_percent"].get(a), "+.1f")
            + (" %" if entry["bd_rate_percent"].get(a) is not None else "")
            for a in anchors
        ]
        lines.append("| " + " | ".join([name, *psnrs, *rates]) + " |")
    machine = summary["machine"]
    lines += [
        "",
        f"{len(summary['images'])} Kodak images; {machine['cpu']}, {machine['torch_threads']} threads, device {machine['device']}.",
        "BD-rate: pchip over the overlapping PSNR interval, all points; negative = fewer bits. '–': outside the measured range or no overlap.",
        "Times: median wall time per image with the weights already loaded; peak RSS: one encode + decode in a fresh process.",
        "",
        "| codec | encode ms | decode ms | of which entropy coding (enc / dec) | peak RSS, MiB (after loading) |",
        "|---|---|---|---|---|",
    ]
    for name, t in summary["speed"].items():
        split = f"{t['encode_entropy_ms']:.0f} / {t['decode_entropy_ms']:.0f}" if "encode_entropy_ms" in t else ""
        mem = summary.get("memory", {}).get(name, {})
        rss = f"{mem['peak_mib']:.0f} ({mem['baseline_mib']:.0f})" if "peak_mib" in mem else ""
        lines.append(f"| {name} | {t['encode_ms']:.0f} | {t['decode_ms']:.0f} | {split} | {rss} |")
    return "\n".join(lines)


def update_readme(summary: dict, readme: Path = REPO / "README.md") -> None:
    text = readme.read_text()
    start, end = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_table(summary) + "\n" + text[end:])


def run(
    images: list[Path],
    out: Path,
    device: str = "cpu",
    classical_names: list[str] | None = None,
    update_cards: bool = False,
    max_settings: int = 0,
) -> dict:
    """Measure everything, write the results files into `out`, and return the summary."""
    models = sorted({p.model for p in weights.rate_points()})
    codecs = [c for c in classical.available() if classical_names is None or c.name in classical_names]
    if max_settings:  # a reduced run: evenly spaced settings of each classical codec
        codecs = [
            replace(
                c,
                settings=tuple(
                    np.array(c.settings)[np.linspace(0, len(c.settings) - 1, max_settings).round().astype(int)].tolist()
                ),
            )
            for c in codecs
        ]
    ours = sum(len(settings_of(p)) for m in models for p in coded_points(m))
    total = len(images) * (ours + sum(len(c.settings) for c in codecs))
    curves = []
    with torch.no_grad(), tqdm(total=total, desc="kodak", unit="code", file=sys.stderr, dynamic_ncols=True) as bar:
        for model in models:
            curves.append(measure_ours(model, images, device, bar))
        for codec_ in codecs:
            curves.append(measure_classical(codec_, images, bar))

    out.mkdir(parents=True, exist_ok=True)
    for curve in curves:
        (out / f"{slug(curve.name)}.json").write_text(json.dumps(curve.compressai_json(), indent=1) + "\n")
    with open(out / "kodak-per-image.csv", "w", newline="") as f:
        fields = ["codec", "setting", "image", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s",
                  "encode_entropy_s", "decode_entropy_s"]  # fmt: skip
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for curve in curves:
            for row in curve.rows:
                writer.writerow({"codec": curve.name, **row})
    summary = {
        "images": [p.name for p in images],
        "machine": {
            "cpu": _cpu_name(),
            "torch_threads": torch.get_num_threads(),
            "device": device,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "codecs": summarize(curves),
        "speed": speed(curves),
        "memory": {
            **{f"aecodec {m}": memory.peak_memory("ours", m, images[0], device) for m in models},
            **{
                c.name: memory.peak_memory("classical", c.name, images[0])
                for c in codecs
                if c.name in ("JPEG 4:2:0", "AVIF 4:4:4")
            },
        },
        "curves": [slug(c.name) + ".json" for c in curves],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if update_cards:
        update_model_cards(curves, summary)
    return summary


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
