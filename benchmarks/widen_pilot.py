"""Paired pilot: does a model grown by ``train.widen`` lose what it knew in its first training steps?

    python -m benchmarks.widen_pilot NARROW_WEIGHTS WIDE_WEIGHTS [--steps 120] [--out runs/pilot]

Both models train from their weights on the identical sequence of crops and λ levels (the same
seed), with the same Adam settings, the training loop's loss and gradient clipping, and a linear
warm-up. Because the batches are the same, the per-step ratio of the two losses is a paired
measure that needs far fewer steps than comparing two runs' Kodak results: it shows whether the
widened model starts where the narrow one is (it codes the same) and how fast the new units
disturb it or start to help. It cannot show what the width is worth after a long run.

Writes one CSV per model (step, λ, loss, bpp, mse, seconds) and prints the mean relative
difference of loss, MSE and bpp over windows of steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import torch

from codec.models import ARCHITECTURES
from train.data import ImageFolder
from train.train import Config, default_train_data, initialize_from, optimization_step, optimizers, rate_distortion

WINDOWS = ((0, 20), (20, 60), (60, 120), (120, 240), (240, 480))


def train_steps(weights: Path, data: list[Path], steps: int, lr: float, warmup: int, out: Path) -> list[dict]:
    """Train the model at `weights` for `steps` steps of 8 256-px crops; its per-step terms."""
    torch.manual_seed(0)  # the training noise
    card = json.loads(weights.with_suffix(".json").read_text())
    levels = tuple(card.get("lambdas") or ())
    model = ARCHITECTURES[card["model"]](card["N"], card["M"], levels)
    initialize_from(model, str(weights))
    model.train()
    optimizer, aux_optimizer = optimizers(model, lr, Config.aux_lr)
    dataset = ImageFolder(data, 256, seed=1)
    rows, started = [], time.time()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        x = dataset.batch(8)
        lmbda = levels[int(torch.randint(len(levels), (), generator=dataset.generator))] if levels else card["lambda"]
        terms = rate_distortion(model, x, lmbda)
        optimization_step(model, terms["loss"], optimizer, aux_optimizer, Config.clip)
        rows.append({"step": step, "lambda": lmbda, **{k: terms[k].item() for k in ("loss", "bpp", "mse")}})
        rows[-1]["seconds"] = time.time() - started
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.widen_pilot", description=__doc__.splitlines()[0])
    parser.add_argument("narrow", type=Path)
    parser.add_argument("wide", type=Path)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=default_train_data())
    parser.add_argument("--out", type=Path, default=Path("runs/pilot"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = [Path(p) for p in args.data.split(",")]
    narrow, wide = (
        train_steps(path, data, args.steps, args.lr, args.warmup, args.out / f"{name}.csv")
        for name, path in (("narrow", args.narrow), ("wide", args.wide))
    )
    for start, stop in WINDOWS:
        if start >= args.steps:
            break
        steps = range(start, min(stop, args.steps))
        change = {
            k: 100 * statistics.mean(wide[i][k] / narrow[i][k] - 1 for i in steps) for k in ("loss", "mse", "bpp")
        }
        print(f"steps {start}-{steps[-1]}: " + ", ".join(f"{k} {v:+.2f} %" for k, v in change.items()))
    print(
        f"seconds per step: narrow {narrow[-1]['seconds'] / args.steps:.1f}, wide {wide[-1]['seconds'] / args.steps:.1f}"
    )


if __name__ == "__main__":
    main()
