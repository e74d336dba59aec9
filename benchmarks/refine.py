"""What encoder-side latent refinement (codec/refine.py) buys, and what it costs, on Kodak.

    python -m benchmarks.refine [--data DIR] [--limit N] [--steps 40] [--lambdas L1,L2,...]
                                [--model minnen2020-channelwise] [--out benchmarks/results/refine.json]
    python -m benchmarks.refine --memory [--out benchmarks/results/refine-memory.json]
    python -m benchmarks.refine --readme     # README's refinement table from benchmarks/results/refine.json

Every image is coded at each λ twice through the CLI's data path, plain and
refined, and decoded with the unchanged decoder: bpp from the file bytes, PSNR
from the decoded 8-bit RGB image, encode time of each. Reported: mean bpp and
PSNR per λ for both, the mean change of J = λ·255²·MSE + bpp (the loss the
refinement lowers), the BD-rate of the refined curve against the plain one
(same λ points, same images), the BD-rates of both curves against the anchors of
the last full benchmark (JPEG 4:2:0 and AVIF 4:4:4 from ``benchmarks/results``,
whose files do not depend on the run, and the published curves), and the encode
times. The λ default to the benchmark's sweep of the model's range, so the plain
curve is the benchmark's. An interrupted run resumes: finished rows are kept in
``<out>.partial.jsonl``.

``--memory`` instead measures the peak resident memory and the time of one
refined encode (quality 75, ``--steps``) in a fresh process per image size, on
Kodak mosaics (benchmarks/large_images.py) from 512×768 up to a 12-megapixel
photo's 4032×3024, about the largest image codec/refine.py refines
(``MAX_PIXELS``). The distortion term is computed in synthesis tiles; what grows
with the area is the rest (the entropy models' graph at latent scale, the image,
Adam's state). Peak memory is reached in the first step; the time grows with the
steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from benchmarks.bdrate import bd_rate
from benchmarks.data import REPO, default_kodak, kodak_images
from benchmarks.harness import MEASURED_ANCHORS, published_curves, settings_of, slug
from benchmarks.large_images import mosaic
from codec import __version__, api, container, refine, weights
from codec.metrics import bits_per_pixel


def anchor_curves(results: Path) -> dict[str, tuple[list[float], list[float]]]:
    """(bpp, PSNR) of the benchmark's measured anchors in `results` and of the published curves."""
    curves = {}
    for name in MEASURED_ANCHORS:
        path = results / f"{slug(name)}.json"
        if path.exists():
            means = json.loads(path.read_text())["results"]
            curves[f"{name} (last benchmark)"] = (means["bpp"], means["psnr-rgb"])
    return curves | published_curves()


def code(net, point: weights.RatePoint, array: np.ndarray, lmbda: float, steps: int) -> dict[str, float]:
    """bpp, MSE and encode seconds of one image coded at λ with `steps` refinement steps."""
    start = time.perf_counter()
    data = api.encode_with(net, array, "RGB", point.fingerprint, point.rate_for(lmbda), refine_steps=steps)
    seconds = time.perf_counter() - start
    header, streams = container.unpack(data)
    decoded = api.decode_with(net, header, streams)
    mse = float(np.mean((decoded.astype(np.float64) - array) ** 2))
    return {"bpp": bits_per_pixel(len(data), *array.shape[:2]), "mse": mse, "encode_s": seconds}


DEFAULT_OUT = REPO / "benchmarks" / "results" / "refine.json"
MEMORY_SIZES = ((512, 768), (1024, 1024), (2048, 2048), (3024, 4032))

_MEMORY_SCRIPT = r"""
import json, sys, time
import numpy as np
import codec
from codec import api, weights
image, steps = np.load(sys.argv[1]), int(sys.argv[2])
weights.load(api.select_rate_point(api.DEFAULT_MODEL, 75))
def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
baseline = peak()
start = time.perf_counter()
codec.encode(image, quality=75, refine_steps=steps)
print(json.dumps({"baseline_mib": baseline, "peak_mib": peak(), "encode_s": time.perf_counter() - start}))
"""


def memory_and_time(images: list[Path], steps: int) -> dict:
    """Peak RSS (MiB, after loading the model and in all) and seconds of one refined encode per size."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in MEMORY_SIZES:
            path = Path(tmp) / f"{height}x{width}.npy"
            np.save(path, mosaic(images, height, width))
            run = subprocess.run(
                [sys.executable, "-c", _MEMORY_SCRIPT, str(path), str(steps)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            results[f"{width}x{height}"] = json.loads(run.stdout.strip().splitlines()[-1])
    return {"steps": steps, "torch_threads": torch.get_num_threads(), "results": results}


def psnr_of(mse: float) -> float:
    return 10 * np.log10(255**2 / mse)


def measure(model: str, images: list[Path], lambdas: list[float], steps: int, partial: Path | None = None) -> dict:
    """Code every image at every λ plain and refined. Rows already in `partial` (a JSON-lines file
    of an interrupted run with the same settings) are reused, and new ones appended to it."""
    point = api.select_rate_point(model, api.DEFAULT_QUALITY)
    if not point.variable_rate:
        raise ValueError(f"{model}: the refinement benchmark sweeps λ and needs variable-rate weights")
    lambdas = [point.rate_for(lmbda) for lmbda in lambdas]  # the λ actually coded (clamped to the range)
    net = weights.load(point)
    done = {}
    if partial is not None and partial.exists():
        for line in partial.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the last line of a run killed while writing
                continue
            settings = row["steps"], row["weights_sha256"], row.get("method"), row.get("version")
            if settings == (steps, point.card["sha256"], refine.METHOD, __version__):
                row["lambda"] = point.rate_for(row["lambda"])
                done[row["image"], row["lambda"]] = row
    rows = []
    with tqdm(total=len(images) * len(lambdas), desc="refine", unit="code") as bar:
        for path in images:
            array = np.asarray(Image.open(path).convert("RGB"))
            for lmbda in lambdas:
                row = done.get((path.name, lmbda))
                if row is None:
                    plain, refined = code(net, point, array, lmbda, 0), code(net, point, array, lmbda, steps)
                    row = {
                        "image": path.name,
                        "lambda": lmbda,
                        "steps": steps,
                        "method": refine.METHOD,
                        "version": __version__,
                        "weights_sha256": point.card["sha256"],
                        "plain": plain,
                        "refined": refined,
                    }
                    if partial is not None:
                        with partial.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                rows.append(row)
                bar.update()
    return summarize(model, point, images, steps, lambdas, rows)


def loss(row: dict, kind: str) -> float:
    """J = λ·MSE + bpp (MSE on the 0–255 scale) of one coded image."""
    return row["lambda"] * row[kind]["mse"] + row[kind]["bpp"]


def summarize(model, point, images, steps, lambdas, rows) -> dict:
    """Per-λ means, BD-rates and the share of images whose refined file was kept.

    The encoder keeps the refined file only when its real J is lower (codec/api.py); rows
    measured before that guard existed get it here, so "refined" is always what
    ``aecodec encode --refine`` writes.
    """
    for row in rows:
        row["refined_kept"] = loss(row, "refined") < loss(row, "plain")
        chosen = row["refined"] if row["refined_kept"] else row["plain"]
        row["encoded"] = chosen | {"encode_s": row["refined"]["encode_s"]}
    per_lambda = []
    for lmbda in lambdas:
        mine = [r for r in rows if r["lambda"] == lmbda]
        entry = {"lambda": lmbda}
        for kind, key in (("plain", "plain"), ("refined", "encoded")):
            entry[kind] = {
                "bpp": float(np.mean([r[key]["bpp"] for r in mine])),
                "psnr": float(np.mean([psnr_of(r[key]["mse"]) for r in mine])),
                "J": float(np.mean([loss(r, key) for r in mine])),
                "encode_s": float(np.mean([r[key]["encode_s"] for r in mine])),
            }
        entry["J_change_percent"] = 100 * (entry["refined"]["J"] / entry["plain"]["J"] - 1)
        entry["refined_kept_share"] = float(np.mean([r["refined_kept"] for r in mine]))
        per_lambda.append(entry)
    curves = {
        kind: ([e[kind]["bpp"] for e in per_lambda], [e[kind]["psnr"] for e in per_lambda])
        for kind in ("plain", "refined")
    }
    anchors = anchor_curves(REPO / "benchmarks" / "results")
    return {
        "model": model,
        "weights_sha256": point.card["sha256"],
        "images": [p.name for p in images],
        "steps": steps,
        "method": refine.METHOD,
        "version": __version__,
        "torch_threads": torch.get_num_threads(),
        "per_lambda": per_lambda,
        "bd_rate_refined_vs_plain_percent": bd_rate_or_none(curves["plain"], curves["refined"]),
        "bd_rate_percent": {
            kind: {anchor: bd_rate_or_none(reference, curve) for anchor, reference in anchors.items()}
            for kind, curve in curves.items()
        },
        "per_image": rows,
    }


def bd_rate_or_none(reference: tuple[list[float], list[float]], test: tuple[list[float], list[float]]) -> float | None:
    """BD-rate of `test` against `reference`, None where it is undefined (no overlap, too few points)."""
    try:
        return bd_rate(*reference, *test)
    except ValueError:
        return None


README_BEGIN, README_END = "<!-- refine-results:begin -->", "<!-- refine-results:end -->"


def readme_table(result: dict) -> str:
    """The README's refinement table from a results file."""
    lines = [
        "| λ | plain bpp | plain PSNR | refined bpp | refined PSNR | J change | encode s, plain / refined |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in result["per_lambda"]:
        p, r = e["plain"], e["refined"]
        lines.append(
            f"| {e['lambda']:.4g} | {p['bpp']:.3f} | {p['psnr']:.2f} | {r['bpp']:.3f} | {r['psnr']:.2f} "
            f"| {e['J_change_percent']:+.2f} % | {p['encode_s']:.2f} / {r['encode_s']:.1f} |"
        )
    rows = result["per_image"]
    kept = 100 * sum(r["refined_kept"] for r in rows) / len(rows)
    lines.append(
        f"\nBD-rate of the refined curve against the plain one: {result['bd_rate_refined_vs_plain_percent']:+.2f} %. "
        f"The refined file was kept (lower real J than the plain one) for {kept:.0f} % of the {len(rows)} coded images."
    )
    return "\n".join(lines)


def update_readme(result: dict, readme: Path = REPO / "README.md") -> None:
    text = readme.read_text()
    head, rest = text.split(README_BEGIN)
    _, tail = rest.split(README_END)
    readme.write_text(f"{head}{README_BEGIN}\n{readme_table(result)}\n{README_END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refine", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_kodak())
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lambdas", default=None, help="comma-separated λ (default: the benchmark's sweep)")
    parser.add_argument("--model", default=api.DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--memory", action="store_true", help="peak memory and time of refined encodes by size")
    parser.add_argument("--readme", action="store_true", help="rewrite README's refinement table from --out")
    args = parser.parse_args(argv)
    if args.readme:
        update_readme(json.loads(args.out.read_text()))
        return
    if args.memory:
        out = args.out if args.out != DEFAULT_OUT else args.out.with_name("refine-memory.json")
        report = memory_and_time(kodak_images(args.data), args.steps)
        out.write_text(json.dumps(report, indent=1) + "\n")
        for size, r in report["results"].items():
            print(
                f"  {size}: {r['encode_s']:.1f} s, peak {r['peak_mib']:.0f} MiB (after loading {r['baseline_mib']:.0f})"
            )
        return
    if args.lambdas:
        lambdas = [float(v) for v in args.lambdas.split(",")]
    else:
        lambdas = settings_of(api.select_rate_point(args.model, api.DEFAULT_QUALITY))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".partial.jsonl")
    result = measure(args.model, kodak_images(args.data, args.limit), lambdas, args.steps, partial)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    partial.unlink(missing_ok=True)
    print(f"{args.model}, {len(result['images'])} images, {args.steps} steps:")
    for e in result["per_lambda"]:
        p, r = e["plain"], e["refined"]
        print(
            f"  λ {e['lambda']:g}: plain {p['bpp']:.3f} bpp {p['psnr']:.2f} dB {p['encode_s']:.2f} s  "
            f"refined {r['bpp']:.3f} bpp {r['psnr']:.2f} dB {r['encode_s']:.1f} s  J {e['J_change_percent']:+.2f} %  "
            f"(refined file kept for {100 * e['refined_kept_share']:.0f} % of images)"
        )
    if result["bd_rate_refined_vs_plain_percent"] is not None:
        print(f"  BD-rate refined vs plain: {result['bd_rate_refined_vs_plain_percent']:+.2f} %")
    for anchor in result["bd_rate_percent"]["plain"]:
        plain, refined = (result["bd_rate_percent"][kind][anchor] for kind in ("plain", "refined"))
        if plain is not None and refined is not None:
            print(f"  BD-rate vs {anchor}: plain {plain:+.1f} %, refined {refined:+.1f} %")


if __name__ == "__main__":
    main()
