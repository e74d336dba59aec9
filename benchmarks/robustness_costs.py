"""What the integer-exact hyper-synthesis costs, and what tiling costs, on Kodak.

    python -m benchmarks.robustness_costs [--data DIR] [--limit N] [--out benchmarks/results]

Integer path (codec/integer.py): for every shipped hyperprior rate point and
Kodak image, y is coded twice, once with the CDF indexes of the float h_s and
once with those of its integer copy; the reconstruction is the same, so only
the bytes differ. Reported: mean bpp of each, the BD-rate of the integer path
against the float path, and the fraction of indexes that differ.

The channel-wise model (codec/models/channelwise.py) is measured the same
way, except that its integer networks also give the means, so symbols and
reconstructions differ too: its float path is coded and decoded in full, and
each path has its own PSNR.

The float path is the float network the weights file holds: the trained one
(float32) for files exported before 0.4, a float16 copy of it up to 0.5.2, and
from 0.5.3 on the integer copy's own weights converted back to float
(codec.integer.with_float_copies). For those newest files the measured cost
is only that of the integer arithmetic (flooring each layer to 2^-14), no
longer that of quantizing the weights too.

Tiling (codec/tiling.py): every image is encoded and decoded through the codec
at the default tile size (a Kodak image is one tile) and at 128-pixel tiles
(24 tiles per image); reported are mean bpp and PSNR and the BD-rate of the
tiled curve against the untiled one, per model.

Both go to benchmarks/results/robustness-costs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import codec
from benchmarks.bdrate import bd_rate
from benchmarks.data import REPO, default_kodak, kodak_images
from benchmarks.harness import coded_points, quality_for_lambda, settings_of
from codec import entropy, tiling, weights
from codec.image import pad
from codec.integer import IntegerSynthesis
from codec.metrics import bits_per_pixel, psnr
from codec.models import PAD_MULTIPLE

SMALL_TILE = 128


@torch.no_grad()
def integer_path_cost(images: list[Path]) -> dict:
    """bpp of the float-indexed and the integer-indexed y stream, per hyperprior rate point."""
    points = weights.rate_points("bmshj2018-hyperprior")
    result: dict = {"lambda": [], "bpp_float": [], "bpp_integer": [], "psnr": [], "indexes_differing": []}
    for point in tqdm(points, desc="integer path", file=sys.stderr):
        net = weights.load(point)
        integer = net.h_s_integer
        if not integer.ready:
            integer = IntegerSynthesis.quantize(net.h_s, net._z_medians(), net.gaussian_conditional.scale_table)
        bits_float = bits_integer = differing = total = 0
        psnrs = []
        for path in images:
            reference = np.asarray(Image.open(path).convert("RGB"))
            y = tiling.analysis(net.g_a, pad(reference, PAD_MULTIPLE))
            z_symbols = torch.round(net.h_a(y.abs()) - net._z_medians())
            z_bytes = len(net.compress_latent(y)[0])
            y_symbols = torch.round(y).int().numpy()
            index_float = net.gaussian_conditional.build_indexes(net.h_s(z_symbols + net._z_medians()))
            index_integer = integer.indexes(z_symbols)
            sizes = [
                z_bytes + len(entropy.encode(y_symbols, i.numpy(), net.tables("y")))
                for i in (index_float, index_integer)
            ]
            bits_float += bits_per_pixel(sizes[0], *reference.shape[:2])
            bits_integer += bits_per_pixel(sizes[1], *reference.shape[:2])
            differing += int((index_float != index_integer).sum())
            total += index_float.numel()
            decoded = tiling.synthesis(net.g_s, torch.round(y), *reference.shape[:2])
            psnrs.append(psnr(reference, decoded))
        result["lambda"].append(point.lmbda)
        result["bpp_float"].append(bits_float / len(images))
        result["bpp_integer"].append(bits_integer / len(images))
        result["psnr"].append(float(np.mean(psnrs)))
        result["indexes_differing"].append(differing / total)
    result["bd_rate_integer_vs_float_percent"] = bd_rate(
        result["bpp_float"], result["psnr"], result["bpp_integer"], result["psnr"]
    )
    return result


@torch.no_grad()
def channelwise_integer_path_cost(images: list[Path], model: str = "minnen2020-channelwise") -> dict:
    """File bytes and PSNR of the channel-wise model with its integer networks (the codec) and with
    the float ones (h_s and the slice networks in float, indexes from the float scales), per rate."""
    result: dict = {"lambda": [], "bpp_float": [], "psnr_float": [], "bpp_integer": [], "psnr_integer": []}
    for point in weights.rate_points(model):
        net = weights.load(point)
        for lmbda in tqdm(point.lambdas or (point.lmbda,), desc="integer path, channel-wise", file=sys.stderr):
            sums = dict.fromkeys(("bpp_float", "psnr_float", "bpp_integer", "psnr_integer"), 0.0)
            for path in images:
                reference = np.asarray(Image.open(path).convert("RGB"))
                padded = pad(reference, PAD_MULTIPLE)
                y = net.gained(tiling.analysis(net.g_a, padded), lmbda)
                streams = net.compress_latent(y)
                y_hat_integer = net.decompress_latent(streams, *padded.shape[:2])
                z_hat = torch.round(net.h_a(y) - net._z_medians()) + net._z_medians()
                support, size = [net.h_s(z_hat)], len(streams[0])
                for i, y_slice in enumerate(y.chunk(len(streams) - 1, dim=1)):
                    scales, means = net.entropy_parameters[i](torch.cat(support, dim=1)).chunk(2, dim=1)
                    symbols = torch.round(y_slice - means)
                    indexes = net.gaussian_conditional.build_indexes(scales)
                    size += len(entropy.encode(symbols.int().numpy(), indexes.numpy(), net.tables("y")))
                    support.append(symbols + means)
                y_hat_float = net._with_residual_prediction(support[0], torch.cat(support[1:], dim=1))
                for y_hat, kind, nbytes in ((y_hat_float, "float", size), (y_hat_integer, "integer", None)):
                    decoded = tiling.synthesis(net.g_s, net.ungained(y_hat, lmbda), *reference.shape[:2])
                    nbytes = nbytes if nbytes is not None else sum(len(stream) for stream in streams)
                    sums[f"bpp_{kind}"] += bits_per_pixel(nbytes, *reference.shape[:2]) / len(images)
                    sums[f"psnr_{kind}"] += psnr(reference, decoded) / len(images)
            result["lambda"].append(lmbda)
            for key, value in sums.items():
                result[key].append(value)
    if len(result["lambda"]) > 1:
        result["bd_rate_integer_vs_float_percent"] = bd_rate(
            result["bpp_float"], result["psnr_float"], result["bpp_integer"], result["psnr_integer"]
        )
    return result


def tiling_cost(images: list[Path], model: str) -> dict:
    """Mean bpp/PSNR per rate point with default and with small tiles, through codec.encode/decode."""
    result: dict = {"tile_default": tiling.TILE, "tile_small": SMALL_TILE, "lambda": []}
    for key in ("bpp_default", "psnr_default", "bpp_small", "psnr_small"):
        result[key] = []
    settings = [lmbda for point in coded_points(model) for lmbda in settings_of(point)]
    for lmbda in tqdm(settings, desc=f"tiling {model}", file=sys.stderr):
        result["lambda"].append(lmbda)
        for tile, suffix in ((tiling.TILE, "default"), (SMALL_TILE, "small")):
            bpps, psnrs = [], []
            for path in images:
                reference = np.asarray(Image.open(path).convert("RGB"))
                data = codec.encode(reference, quality=quality_for_lambda(lmbda), model=model, tile=tile)
                decoded = np.asarray(codec.decode(data, tile=tile))
                bpps.append(bits_per_pixel(len(data), *reference.shape[:2]))
                psnrs.append(psnr(reference, decoded))
            result[f"bpp_{suffix}"].append(float(np.mean(bpps)))
            result[f"psnr_{suffix}"].append(float(np.mean(psnrs)))
    result["bd_rate_small_tiles_vs_default_percent"] = bd_rate(
        result["bpp_default"], result["psnr_default"], result["bpp_small"], result["psnr_small"]
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robustness_costs", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_kodak(), help="Kodak folder")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    images = kodak_images(args.data, args.limit)
    models = sorted({point.model for point in weights.rate_points()})
    report = {
        "images": len(images),
        "integer_path": integer_path_cost(images),
        "tiling": {model: tiling_cost(images, model) for model in models},
    }
    if "minnen2020-channelwise" in models:
        report["integer_path_channelwise"] = channelwise_integer_path_cost(images)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness-costs.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
