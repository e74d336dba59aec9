"""How well each installed model's transforms alone can reconstruct Kodak: the ceiling that no
entropy model or rate can lift.

    python -m benchmarks.transform_ceiling [--data DIR] [--limit N] [--out FILE]

For every rate point (a variable-rate model at each of its λ levels), the mean PSNR of the
8-bit reconstructions of

* g_s(g_a(x)): the latent not quantized at all, the transforms' own ceiling;
* g_s(round(g_a(x))): rounded to integers. That is what the scale hyperprior codes, so on
  images whose sides are multiples of 64 (Kodak's: the codec pads nothing) it is that model's
  coded PSNR; the factorized model rounds around its medians and the channel-wise model
  around predicted means, plus residual prediction, so theirs differ a little.

Sides are cut to multiples of 16. If the coded PSNR at high λ sits just under the first
number, more rate cannot help: the transforms need more capacity (most directly more latent
channels M; see train/widen.py) or more training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.data import default_kodak, kodak_images
from codec import weights
from codec.metrics import psnr
from codec.tiling import to_uint8


@torch.no_grad()
def ceiling(point: weights.RatePoint, lmbda: float, images: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR of the unquantized and of the rounded latent through g_s, for one rate point at λ."""
    net = weights.load(point)
    rate = lmbda if point.lambdas else None
    unquantized, rounded = [], []
    for array in images:
        height, width = (side - side % 16 for side in array.shape[:2])  # g_a needs multiples of 16
        array = array[:height, :width]
        x = torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255
        y = net.gained(net.g_a(x), rate)
        unquantized.append(psnr(array, to_uint8(net.g_s(net.ungained(y, rate))[0])))
        rounded.append(psnr(array, to_uint8(net.g_s(net.ungained(torch.round(y), rate))[0])))
    return {"unquantized_psnr": float(np.mean(unquantized)), "rounded_psnr": float(np.mean(rounded))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transform_ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_kodak())
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    images = [np.asarray(Image.open(path).convert("RGB")) for path in kodak_images(args.data, args.limit)]
    rows = []
    print("model  N  M  λ  unquantized PSNR  rounded PSNR")
    for point in weights.rate_points():
        for lmbda in point.lambdas or (point.lmbda,):
            row = {"model": point.model, "N": point.card["N"], "M": point.card["M"], "lambda": lmbda}
            row.update(ceiling(point, lmbda, images))
            rows.append(row)
            print(
                f"{point.model}  {row['N']}  {row['M']}  {lmbda:g}  {row['unquantized_psnr']:.2f}  {row['rounded_psnr']:.2f}"
            )
    if args.out:
        args.out.write_text(json.dumps({"images": len(images), "points": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
