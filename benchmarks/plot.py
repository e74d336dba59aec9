"""Rate–distortion plots and a visual comparison, from the benchmark's results folder.

    aecodec plot [--results benchmarks/results]

Writes rd-kodak.png/.svg (PSNR and MS-SSIM in dB against bpp: our models, the
classical codecs measured in the same run, and published learned curves as
dashed references) and visual-comparison.png (one crop from our codec, JPEG and
AVIF at about the same bpp).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import codec  # noqa: E402
from benchmarks import classical  # noqa: E402
from benchmarks.harness import PUBLISHED, coded_points, quality_for  # noqa: E402
from codec.metrics import bits_per_pixel, ms_ssim_db, psnr  # noqa: E402

REFERENCES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "minnen2020-cc10 (paper)", "BPG-444")


def rd_plot(results: Path) -> list[Path]:
    summary = json.loads((results / "summary.json").read_text())
    curves = [json.loads((results / name).read_text()) for name in summary["curves"]]
    published = json.loads(PUBLISHED.read_text())
    fig, (ax_psnr, ax_ssim) = plt.subplots(1, 2, figsize=(13, 5.5))
    for curve in curves:
        r = curve["results"]
        ours = curve["name"].startswith("aecodec")
        style = {"marker": "o", "linewidth": 2.2} if ours else {"marker": ".", "linewidth": 1.2}
        ax_psnr.plot(r["bpp"], r["psnr-rgb"], label=curve["name"], **style)
        ax_ssim.plot(r["bpp"], [ms_ssim_db(v) for v in r["ms-ssim-rgb"]], label=curve["name"], **style)
    for name, linestyle in zip(REFERENCES, ("--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), ":")):
        if name in published:
            ax_psnr.plot(published[name]["bpp"], published[name]["psnr"], linestyle=linestyle, color="black",
                         alpha=0.7, label=f"{name} (published, CompressAI)")  # fmt: skip
    for ax, ylabel in ((ax_psnr, "PSNR RGB (dB)"), (ax_ssim, "MS-SSIM RGB (dB, −10·log10(1−MS-SSIM))")):
        ax.set_xlabel("bits per pixel (bpp)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, 2.0)
        ax.grid(True, alpha=0.3)
    ax_psnr.set_ylim(22, 40)
    ax_ssim.set_ylim(6, 22)
    ax_psnr.legend(fontsize=7.5, loc="lower right")
    machine = summary["machine"]
    fig.suptitle(f"Kodak ({len(summary['images'])} images), measured on {machine['cpu']}; black: published curves")
    fig.tight_layout()
    paths = [results / "rd-kodak.png", results / "rd-kodak.svg"]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths


def visual_comparison(image_path: Path, results: Path, box=(250, 180, 474, 372)) -> Path:
    """The same crop decoded by our default model and by JPEG and AVIF at about the same bpp."""
    original = Image.open(image_path).convert("RGB")
    reference = np.asarray(original)
    height, width = reference.shape[:2]
    points = coded_points(codec.DEFAULT_MODEL)
    point = points[len(points) // 2]
    ours = codec.encode(original, quality=quality_for(point))
    target = bits_per_pixel(len(ours), height, width)
    panels = [("original", reference, None), (f"aecodec {point.model}", np.asarray(codec.decode(ours)), len(ours))]
    for name in ("JPEG 4:2:0", "AVIF 4:4:4"):
        match = [c for c in classical.available() if c.name == name]
        if not match:
            continue
        encoded = [match[0].encode(original, q) for q in match[0].settings]
        best = min(encoded, key=lambda d: abs(bits_per_pixel(len(d), height, width) - target))
        panels.append((name, np.asarray(match[0].decode(best)), len(best)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3))
    left, top, right, bottom = box
    for ax, (name, array, size) in zip(axes, panels):
        ax.imshow(array[top:bottom, left:right], interpolation="nearest")
        if size is None:
            ax.set_title(f"{name}\n{image_path.name}", fontsize=10)
        else:
            bpp = bits_per_pixel(size, height, width)
            ax.set_title(f"{name}\n{bpp:.3f} bpp, {psnr(reference, array):.2f} dB (whole image)", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    path = results / "visual-comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
