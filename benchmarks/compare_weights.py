"""Compare candidate weights (e.g. a training run's exports) with the installed ones on Kodak.

    python -m benchmarks.compare_weights runs/export [--shipped assets/models] [--limit N]

Each candidate rate point codes the Kodak images at its λ (a variable-rate
point at each of its trained levels) through the CLI's data path; so does the
installed point of the same model and λ, if there is one. Reported per λ:
bpp (file bytes), PSNR (decoded 8-bit RGB) and the training objective
J = λ·MSE + bpp (MSE on the 0–255 scale, averaged over images), the number a
fine-tune lowers. A candidate is better when its J is lower. For small gains,
re-run the benchmark before shipping: a point that buys a little PSNR with
more bits lowers J yet can leave the BD-rate over the whole curve unchanged
or slightly worse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.data import default_kodak, kodak_images
from codec import api, container, weights
from codec.metrics import bits_per_pixel, psnr


def measure(point: weights.RatePoint, lmbda: float, images: list[np.ndarray]) -> dict[str, float]:
    """Mean bpp, PSNR and J = λ·MSE + bpp of one rate point at rate λ."""
    net = weights.load(point)
    bpps, mses, psnrs = [], [], []
    for array in images:
        data = api.encode_with(net, array, "RGB", point.fingerprint, point.rate_for(lmbda))
        header, streams = container.unpack(data)
        decoded = api.decode_with(net, header, streams)
        bpps.append(bits_per_pixel(len(data), *array.shape[:2]))
        mses.append(float(np.mean((decoded.astype(np.float64) - array) ** 2)))
        psnrs.append(psnr(array, decoded))
    bpp, mse = float(np.mean(bpps)), float(np.mean(mses))
    return {"bpp": bpp, "psnr": float(np.mean(psnrs)), "J": lmbda * mse + bpp}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_weights", description=__doc__.splitlines()[0])
    parser.add_argument("candidates", type=Path)
    parser.add_argument("--shipped", type=Path, default=weights.weights_dir())
    parser.add_argument("--data", type=Path, default=default_kodak())
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = parser.parse_args(argv)
    images = [np.asarray(Image.open(path).convert("RGB")) for path in kodak_images(args.data, args.limit)]
    shipped = weights.rate_points(directory=args.shipped)
    print("model  λ  candidate bpp/PSNR/J  installed bpp/PSNR/J  verdict")
    for point in weights.rate_points(directory=args.candidates):
        if any(p.card["sha256"] == point.card["sha256"] for p in shipped):
            print(f"{point.model}  {point.lmbda:g}  (already installed)")
            continue
        for lmbda in point.lambdas or (point.lmbda,):
            new = measure(point, lmbda, images)
            same = [
                p
                for p in shipped
                if p.model == point.model and p.accepts(lmbda) and p.card["sha256"] != point.card["sha256"]
            ]
            old = measure(same[0], lmbda, images) if same else None
            verdict = "new λ" if old is None else ("better" if new["J"] < old["J"] else "worse")
            shown = f"{old['bpp']:.4f} {old['psnr']:.3f} {old['J']:.4f}" if old else "–"
            print(
                f"{point.model}  {lmbda:g}  {new['bpp']:.4f} {new['psnr']:.3f} {new['J']:.4f}  {shown}  {verdict}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
