"""Give a trained model more latent channels (a larger M) or wider hidden layers (a larger N)
without changing what it codes.

    python -m train.widen WEIGHTS... [--M 192] [--N 128] --out DIR

Why: the transforms of an N=64, M=96 model cannot reconstruct Kodak much above 32 dB even
without quantization (g_s(g_a(x)) with the latent unrounded): 96 latent channels per 16×16
block of RGB pixels is an 8:1 reduction of the dimension before any coding. The shipped
M=96 models stall there at high rates, whatever λ asks for (the channel-wise model did too,
until it was widened for 0.4.0). CompressAI's models of the same
architectures use M=192 (and M=320 at their highest rates). Training a wider model from
scratch would throw away the hours already spent on the narrow one; widening keeps them.

How (function-preserving growth, in the spirit of Chen, Goodfellow, Shlens 2016, "Net2Net"):
the new latent channels start silent and cost no bits, so the widened model codes every image
exactly as before (up to the new channels' rounding), and fine-tuning then decides what to put
in them. That is slow to start: a channel is free because its density (or predicted scale) is
narrow, and the same narrowness makes its first non-zero symbols expensive. In 1,000 CPU steps
of 8 crops, a widened factorized model did not use its new channels yet; in 13,000 GPU steps of
32 crops, the widened channel-wise model did, and beat the same fine-tune of the narrow one at
every λ, by up to 20 % in J at the highest rate (README, Training). The shipped channel-wise
model since 0.4.0 was grown this way, with `synthesis_scale` 1.

* g_a's last convolution gets new output channels with small random weights and zero bias:
  small values that round away (to 0, or in the factorized model to their density's median);
* g_s's first (transposed) convolution gets random weights from them (`synthesis_scale` times
  its default initialization, 0.01 unless asked), which change nothing when coding (ŷ is
  exactly 0 there) but carry the distortion's gradient back to g_a in training: the larger
  they are, the harder distortion pulls a new channel out of silence against the rate; the
  factorized model, whose ŷ there is not 0, gets zero weights instead (it trains with
  additive noise, so those weights still get a gradient) and takes no `synthesis_scale`;
* scale hyperprior: h_a ignores them (zero input weights) and h_s predicts the smallest scale
  for them (zero weights, bias at the 0.11 lower bound, where its ReLU still passes a gradient);
* factorized prior: each new channel's density is a copy of the existing channel that gives
  its median the highest probability, narrowed a hundredfold around zero, so that its median
  symbol has a probability near one and a new channel costs almost nothing;
* a variable-rate model's gain units start the new channels at the usual gains (∝ λ^½).

The channel-wise model (Minnen & Singh 2020) grows the same way, slice by slice: each of its
slices gets the new channels at its end, with the smallest scale and a zero mean from its
entropy-parameter network, and every network whose width follows M (h_s, the entropy-parameter
and residual-prediction networks) gets new hidden units that feed only zero weights. An M=192
mean-scale h_s has layers with more than 4096 inputs per output; their integer copies keep a
bit less weight precision so that their sums stay exact (codec/integer.py). The mean-scale
hyperprior alone is not supported.

Wider hidden layers (N). The M=192 channel-wise model still cannot reconstruct Kodak much
above 34 dB unquantized (benchmarks/transform_ceiling.py): its four-layer transforms are
64 wide, where CompressAI's models of these architectures are 128 (N=192 at their highest
rates). A wider N costs little on the GPU, where an N=64 model is bound by kernel launches,
but it costs decode time on the CPU: g_s of a Kodak image takes about 0.2 s at N=64 and
0.6 s at N=128 on two cores, so the channel-wise model at N=128 decodes in about 0.8 s,
where the decode-time budget (twice the scale hyperprior's) holds only if the hyperprior
grows to N=128 as well (README, Training). Growing N keeps the function the same way as growing M:

* every new hidden unit of g_a, g_s, h_a and h_s feeds only zero weights, so nothing
  downstream changes, and starts quiet: the weights into it are its default initialization
  scaled by NEW_WEIGHT_SCALE, so that the first training steps on its zero outgoing weights
  (Adam moves each by about the learning rate) barely disturb the trained units;
* GDN's new γ entries start at zero off the diagonal (its default), so the old units are
  normalized exactly as before, and the new ones by themselves;
* in the hyperprior models z has N channels: the new ones get h_a's small weights and zero bias
  and silenced densities, as the factorized model's new latent channels do, and h_s starts
  with zero weights from them.

N grows first, then M, when both are asked for.

The widened weights are exported with their CDF tables and integer networks rebuilt, and a
card naming what they were widened from. They are a starting point for training
(`python -m train --M=... --init=...`), not better weights by themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from codec import weights
from codec.models import ARCHITECTURES
from codec.models.base import LatentCodecModel
from codec.models.channelwise import NUM_SLICES, ChannelwiseAutoregressive
from codec.models.factorized import FactorizedPrior
from codec.models.hyperprior import SCALE_MIN, ScaleHyperprior

NEW_WEIGHT_SCALE = 0.01  # of the default initialization, for g_a's new output channels
SHARPEN = 100.0  # the factorized model's new densities: a copied one, narrowed by this factor


@torch.no_grad()
def widen(
    model: LatentCodecModel,
    M: int | None = None,
    *,
    N: int | None = None,
    seed: int = 0,
    synthesis_scale: float = NEW_WEIGHT_SCALE,
) -> LatentCodecModel:
    """A copy of `model` with M latent channels and N hidden ones (each at least the model's;
    None keeps it) that codes as `model` does.

    `synthesis_scale` scales g_s's default initialization for the weights from the new latent
    channels (hyperprior and channel-wise models). Coding never sees them, but in training they
    set how strongly distortion pulls a new channel out of silence against the rate that keeps
    it there."""
    if type(model) not in (FactorizedPrior, ScaleHyperprior, ChannelwiseAutoregressive):
        raise ValueError(f"widening {model.name} is not supported")
    M, N = model.M if M is None else M, model.N if N is None else N
    if M < model.M or N < model.N or (M, N) == (model.M, model.N):
        raise ValueError(f"N={N}, M={M} is not larger than the model's N={model.N}, M={model.M}")
    if synthesis_scale <= 0:
        raise ValueError(f"synthesis_scale must be positive, not {synthesis_scale}")
    if isinstance(model, FactorizedPrior) and synthesis_scale != NEW_WEIGHT_SCALE:
        raise ValueError("the factorized model's new g_s weights start at zero: it takes no synthesis_scale")
    if isinstance(model, ChannelwiseAutoregressive) and M % NUM_SLICES:
        raise ValueError(f"M={M} does not split into {NUM_SLICES} slices")
    with torch.random.fork_rng():  # the new weights' draws leave the caller's random state alone
        torch.manual_seed(seed)
        if N > model.N:
            model = _widen_hidden(model, N)
        if M == model.M:
            return model
        if isinstance(model, ChannelwiseAutoregressive):
            return _widen_channelwise(model, M, synthesis_scale)
        return _widen_single_latent(model, M, synthesis_scale)


def _widen_hidden(model: LatentCodecModel, N: int) -> LatentCodecModel:
    """N, the width of the transforms' hidden layers and (except in the factorized model) of z.

    Every new hidden unit feeds only zero weights, so nothing downstream changes, and gets its
    default initialization for the weights into it scaled by NEW_WEIGHT_SCALE (and a zero bias),
    so it starts quiet. Both matter in training: Adam moves every zero weight by about the
    learning rate at its first steps, whatever its gradient, and from units at full strength
    those moves disturbed what the model already does (in a paired CPU pilot at lr 1e-4 without
    warm-up, the training loss of the channel-wise model grown from N=64 to 128 was 35 % above
    the narrow one's for its first 10 steps); quiet units keep that disturbance small, and
    their outgoing weights still get a gradient. GDN's new cross terms are zero by default (its
    γ starts diagonal), so the old units are normalized exactly as before. The new z channels
    are made silent like the factorized model's new latent channels: small values from h_a,
    and densities narrowed around zero, so they cost almost nothing until h_s learns to use them.
    """
    wide = type(model)(N, model.M, model.lambdas)
    _embed(model, wide, {})  # zero weights from the new units; GDN's new γ entries start at zero
    narrow_modules = dict(model.named_modules())
    for name, module in wide.named_modules():
        if (
            isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
            and module.out_channels > narrow_modules[name].out_channels
        ):
            new = slice(narrow_modules[name].out_channels, module.out_channels)
            outputs = module.weight[:, new] if isinstance(module, nn.ConvTranspose2d) else module.weight[new]
            outputs *= NEW_WEIGHT_SCALE
            module.bias[new] = 0.0
    if not isinstance(wide, FactorizedPrior):
        _silence(wide.entropy_bottleneck, slice(model.N, N), most_probable_channel(model))
    return wide.eval()


def _widen_single_latent(model: FactorizedPrior | ScaleHyperprior, M: int, synthesis_scale: float) -> LatentCodecModel:
    """The factorized and scale-hyperprior models: new channels appended after the old ones."""
    wide = type(model)(model.N, M, model.lambdas)
    default_synthesis = wide.g_s[0].weight.clone()
    _embed(model, wide, {})  # zero weights from new inputs: g_s's and h_a's from the new channels
    new = slice(model.M, M)
    wide.g_a[-1].weight[new] *= NEW_WEIGHT_SCALE
    wide.g_a[-1].bias[new] = 0.0
    if isinstance(wide, ScaleHyperprior):
        wide.g_s[0].weight[new] = synthesis_scale * default_synthesis[new]  # ŷ is exactly 0 there
        wide.h_s[-2].weight[new] = 0.0
        wide.h_s[-2].bias[new] = SCALE_MIN
    else:  # g_s keeps zero weights: ŷ there is the new densities' median, not 0
        _silence(wide.entropy_bottleneck, new, most_probable_channel(model))
    return wide.eval()


def _widen_channelwise(model: ChannelwiseAutoregressive, M: int, synthesis_scale: float) -> ChannelwiseAutoregressive:
    """The channel-wise model: y is coded in NUM_SLICES slices, so each slice grows at its end,
    and every network whose width follows M grows with it (new hidden units keep their default
    initialization: they feed only zero weights). The new slice channels get g_a's small
    weights, the smallest scale and a zero mean."""
    old_M, old_s, s = model.M, model.M // NUM_SLICES, M // NUM_SLICES
    wide = ChannelwiseAutoregressive(model.N, M, model.lambdas)
    default_synthesis = wide.g_s[0].weight.clone()
    y = torch.tensor([(c // old_s) * s + c % old_s for c in range(old_M)])  # old channel of y → new

    def support(slices: int) -> Tensor:
        """Positions of an old entropy-parameter / LRP input: h_s's 2M outputs, then decoded slices."""
        decoded = [2 * M + j * s + k for j in range(slices) for k in range(old_s)]
        return torch.cat([torch.arange(2 * old_M), torch.tensor(decoded, dtype=torch.long)])

    slice_outputs = torch.cat([torch.arange(old_s), s + torch.arange(old_s)])  # (scales, means) of a slice
    maps: dict[str, tuple[Tensor | None, ...]] = {"g_a.6": (y, None), "g_s.0": (y, None), "h_a.0": (None, y)}
    for i in range(NUM_SLICES):
        maps[f"entropy_parameters.{i}.0"] = (None, support(i))
        maps[f"entropy_parameters.{i}.4"] = (slice_outputs, None)
        maps[f"residual_prediction.{i}.0"] = (None, support(i + 1))
    maps["gain_units.log_gain"] = maps["gain_units.log_inverse_gain"] = (None, y)
    _embed(model, wide, maps)

    new_y = torch.ones(M, dtype=torch.bool)
    new_y[y] = False
    new_y = torch.nonzero(new_y).flatten()
    wide.g_a[-1].weight[new_y] *= NEW_WEIGHT_SCALE
    wide.g_a[-1].bias[new_y] = 0.0
    # Not zero, though coding never sees it (ŷ is exactly 0 there): training rounds ŷ straight
    # through, so only these weights carry the distortion's gradient back to the new channels.
    wide.g_s[0].weight[new_y] = synthesis_scale * default_synthesis[new_y]
    new_in_slice = torch.arange(old_s, s)
    for i in range(NUM_SLICES):
        parameters, residual = wide.entropy_parameters[i][-1], wide.residual_prediction[i][-1]
        parameters.weight[new_in_slice] = parameters.weight[s + new_in_slice] = 0.0
        parameters.bias[new_in_slice], parameters.bias[s + new_in_slice] = SCALE_MIN, 0.0
        residual.weight[new_in_slice], residual.bias[new_in_slice] = 0.0, 0.0
    return wide.eval()


def _embed(model: LatentCodecModel, wide: LatentCodecModel, maps: dict[str, tuple[Tensor | None, ...]]) -> None:
    """Copy every trained tensor of `model` into the same-named, larger one of `wide`, so that each
    entry keeps its meaning, and zero the convolution weights from inputs that are new.

    `maps` gives, per parameter or module name, where the old entries go along dims 0 and 1
    (None, or a name not listed: the first positions); a bias follows its weight's output
    dimension. Convolution weights are (out, in, k, k), transposed ones (in, out, k, k)."""
    trained = dict(model.named_parameters())
    for name, parameter in wide.named_parameters():
        old = trained[name]
        module = name.rsplit(".", 1)[0]
        transposed = isinstance(wide.get_submodule(module), nn.ConvTranspose2d)
        dims = maps.get(name, maps.get(module, ()))
        if name.endswith(".bias"):
            dims = dims[int(transposed) :][:1]
        index = [dims[d] if d < len(dims) and dims[d] is not None else torch.arange(n) for d, n in enumerate(old.shape)]
        if isinstance(wide.get_submodule(module), (nn.Conv2d, nn.ConvTranspose2d)) and name.endswith(".weight"):
            inputs = 0 if transposed else 1
            kept = torch.zeros(parameter.shape[inputs], dtype=torch.bool)
            kept[index[inputs]] = True
            parameter.index_fill_(inputs, torch.nonzero(~kept).flatten(), 0.0)
        parameter[torch.meshgrid(*index, indexing="ij")] = old


def _silence(bottleneck: nn.Module, new: slice, source: int) -> None:
    """Give the entropy bottleneck's `new` channels a copy of channel `source`'s density (the one
    whose median is most probable), narrowed around zero, so that near-zero values cost almost
    nothing there."""
    for parameter in bottleneck.parameters():
        parameter[new] = parameter[source].clone()
    # Density x ↦ p(SHARPEN·x): the first layer of the CDF network is the only one that sees x.
    first = bottleneck.matrices[0]
    first[new] = inverse_softplus(SHARPEN * torch.nn.functional.softplus(first[new]))
    bottleneck.quantiles[new] /= SHARPEN


def inverse_softplus(x: Tensor) -> Tensor:
    """The y with softplus(y) = x > 0, without overflow: x + log(1 − e^−x)."""
    return x + torch.log(-torch.expm1(-x))


@torch.no_grad()
def most_probable_channel(model: LatentCodecModel) -> int:
    """The entropy-bottleneck channel (of y, or of z) whose median symbol has the highest probability,
    among those not silenced by an earlier widening (whose copies would be narrowed once more)."""
    bottleneck = model.entropy_bottleneck
    medians = bottleneck.quantiles[:, 0, 1].view(1, -1, 1, 1)
    _, likelihood = bottleneck(medians, training=False)  # rounds to the medians in any mode
    # A silenced channel is a copy of another one (bitwise the same biases), narrowed: the wider
    # of two copies is the original.
    biases = bottleneck.biases[0].flatten(1)
    spread = bottleneck.quantiles[:, 0, 2] - bottleneck.quantiles[:, 0, 0]
    copies = (biases[:, None] == biases[None]).all(dim=-1)
    silenced = (copies & (spread[None, :] > spread[:, None])).any(dim=1)
    return int(likelihood.flatten().masked_fill(silenced, -1.0).argmax())


def widen_file(
    weights_path: Path,
    out: Path,
    M: int | None = None,
    N: int | None = None,
    synthesis_scale: float = NEW_WEIGHT_SCALE,
) -> Path:
    """Widen the weights at `weights_path` (with their card beside them) and export them into `out`."""
    card = json.loads(weights_path.with_suffix(".json").read_text())
    lambdas = tuple(card.get("lambdas") or ())
    model = ARCHITECTURES[card["model"]](card["N"], card["M"], lambdas)
    model.load_weights(load_file(str(weights_path)))
    wide = widen(model, M, N=N, synthesis_scale=synthesis_scale)
    grown = [
        f"{key} from {before} to {after}"
        for key, before, after in (("N", model.N, wide.N), ("M", model.M, wide.M))
        if after != before
    ]
    synthesis = (
        ""
        if card["model"] == FactorizedPrior.name or wide.M == model.M
        else (f"; g_s's weights from the new latent channels at {synthesis_scale:g}× its default initialization")
    )
    source = {key: card.get(key) for key in ("model", "N", "M", "lambda", "weights", "sha256")}
    trained = card.get("training") or {}
    training = {  # the training so far, carried on to the runs that start from these weights
        "total_steps": trained.get("total_steps", trained.get("steps")),
        "total_hours": trained.get("total_hours", trained.get("hours")),
        "note": f"widened {' and '.join(grown)} by train.widen (the new units silent{synthesis}); not trained since",
        "widened_from": {**source, "training": trained},
    }
    return weights.export(wide, None if lambdas else card["lambda"], out, {"training": training})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.widen", description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--M", type=int, help="the new number of latent channels (default: the same)")
    parser.add_argument("--N", type=int, help="the new width of the hidden layers and of z (default: the same)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--synthesis_scale",
        type=float,
        help="g_s's weights from the new latent channels, as a multiple of its default initialization "
        f"(default {NEW_WEIGHT_SCALE:g})",
    )
    args = parser.parse_args(argv)
    if args.M is None and args.N is None:
        parser.error("give --M, --N or both")
    if args.M is None and args.synthesis_scale is not None:
        parser.error("--synthesis_scale sets weights from new latent channels: it needs --M")
    if args.synthesis_scale is None:
        args.synthesis_scale = NEW_WEIGHT_SCALE
    if any(args.out.resolve() == path.parent.resolve() for path in args.weights):
        sys.exit(f"train.widen: {args.out} holds the weights themselves: choose another --out")
    for path in args.weights:
        try:
            print(widen_file(path, args.out, args.M, args.N, args.synthesis_scale))
        except (OSError, ValueError, KeyError) as error:
            sys.exit(f"train.widen: {path}: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])
