"""Integer-exact hyper-synthesis: CDF-table indexes that are the same on every machine.

Why. The hyperprior decoder picks the CDF table of every element of y from the
output of the hyper-synthesis network h_s. If encoder and decoder compute h_s
with different floating-point summation orders (another thread count, BLAS,
oneDNN version, or CPU against GPU), a scale that falls near a table boundary
can land in a neighbouring table, and from that element on the range decoder
reads garbage. CompressAI's users see this as black blocks and NaN PSNR when
decoding on another device (CompressAI issues #279, #309, #320;
tensorflow/compression #44).

How. Ballé, Johnston, Minnen 2019, "Integer networks for data compression with
latent-variable models" (ICLR), make the network integer. Here a trained h_s is
quantized after training (no fine-tuning is needed at this precision; the cost
is measured by benchmarks/robustness_costs.py):

* activations are fixed-point integers with `FRACTION_BITS` fractional bits;
  the input z_hat = z_symbols + median becomes z_symbols·2^F + round(median·2^F);
* each layer's weights are integers, round(w·2^q), with the largest magnitude
  below 2^`WEIGHT_BITS` (a bit less for layers summing 4096 or more products per
  output, `layer_weight_bits`); its bias is round(b·2^(F+q)), q lowered if
  that would reach 2^50;
* a layer is accumulated in float64 on integer values whose partial sums all
  stay below 2^53 (activations are clamped to ±2^`ACTIVATION_BITS`), so every
  addition is exact and the result does not depend on the summation order;
  it is then floored back to 2^F (division by a power of two is exact), and
  ReLU is a comparison; between layers the activations are held as int32
  (they are integers within ±2^28), half the memory of float64;
* the index of an element is the number of stored integer thresholds
  floor(scale_table[i]·2^F) (i < K−1) below its integer scale, which is
  compressai's `build_indexes` rule on the fixed-point scale.

The same code quantizes the channel-wise model's entropy-parameter networks
(codec/models/channelwise.py), whose input is already fixed-point (`run`): the
h_s output and the decoded slices.

The networks run on the CPU whatever the model's device: they work at 1/64
(h_s input) to 1/16 (slice networks) of the image side, so they are cheap next
to the transforms, and CPU float64 convolution is plain multiply–add (no
Winograd or FFT algorithms that would introduce non-integer intermediates).
Each layer runs in bands of rows (`BAND_ROWS`), so huge images never unfold a
whole float64 activation at once (only a band is float64), and a network of
'same' convolutions runs whole bands at a time (`run_concatenated`); the
integers are the same either way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FRACTION_BITS = 14
WEIGHT_BITS = 13
MIN_WEIGHT_BITS = 9
ACTIVATION_BITS = 28
_LIMIT = float(1 << ACTIVATION_BITS)
_INT_LIMIT = 1 << ACTIVATION_BITS
BAND_ROWS = 32  # input rows per band of a layer (bounds float64 im2col buffers on huge images)


def products_per_output(conv: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """How many weight × activation products one output of `conv` sums: in·k² for a convolution;
    for a transposed one of stride s only in·⌈k/s⌉², since each output position meets only every
    s-th kernel tap in each direction (the rest multiply the zeros between input samples)."""
    kernel, stride = conv.kernel_size, conv.stride
    if isinstance(conv, nn.ConvTranspose2d):
        return conv.in_channels * math.ceil(kernel[0] / stride[0]) * math.ceil(kernel[1] / stride[1])
    return conv.in_channels // conv.groups * kernel[0] * kernel[1]


def layer_weight_bits(fan_in: int) -> int:
    """The weight precision of a layer whose outputs each sum `fan_in` products: `WEIGHT_BITS`, one
    bit less for each doubling of the fan-in from 2^12 on, so that every partial sum stays below
    2^52 (2^53 less headroom for the bias). Smaller layers, all of those shipped so far, keep the
    full precision, so their integers do not change."""
    bits = WEIGHT_BITS
    while fan_in * 2.0 ** (ACTIVATION_BITS + bits - 1) >= 2.0**52:
        bits -= 1
    if bits < MIN_WEIGHT_BITS:
        raise ValueError(f"a layer with fan-in {fan_in} would keep only {bits} weight bits")
    return bits


class IntegerSynthesis(nn.Module):
    """An integer copy of a Conv2d / ConvTranspose2d / ReLU stack whose outputs choose CDF tables.

    All state lives in buffers (int64; weights files store them narrower, see weights._compact),
    so it is saved with the weights and fingerprinted with them. `layer_kinds` encodes each layer as
    (transposed, stride, padding, output_padding, relu).
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        for i in range(num_layers):
            self.register_buffer(f"weight{i}", torch.empty(0, dtype=torch.int64))
            self.register_buffer(f"bias{i}", torch.empty(0, dtype=torch.int64))
            self.register_buffer(f"shift{i}", torch.empty(0, dtype=torch.int64))
        self.register_buffer("layer_kinds", torch.empty(0, 5, dtype=torch.int64))
        self.register_buffer("input_offset", torch.empty(0, dtype=torch.int64))
        self.register_buffer("thresholds", torch.empty(0, dtype=torch.int64))

    @classmethod
    @torch.no_grad()
    def quantize(
        cls, network: nn.Sequential, input_offset: Tensor | None = None, scale_table: Tensor | None = None
    ) -> IntegerSynthesis:
        """Quantize a trained float network.

        With `input_offset` (per channel) its input is z_symbols + offset (`forward`); without,
        its input is already fixed-point (`run`). `scale_table` gives the thresholds of `indexes_of`.
        """
        layers = list(network)
        convs = [(m, i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)) for i, m in enumerate(layers)]
        convs = [(m, relu) for m, relu in convs if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        if len(convs) + sum(relu for _, relu in convs) != len(layers):
            raise ValueError("only Conv2d, ConvTranspose2d and ReLU layers can be made integer")
        net = cls(len(convs))
        kinds = []
        for i, (conv, relu) in enumerate(convs):
            weight = conv.weight.detach().double().cpu()
            fan_in = products_per_output(conv)
            weight_bits = layer_weight_bits(fan_in)
            shift = weight_bits - 1 - math.ceil(math.log2(max(weight.abs().max().item(), 1e-12)))
            out_channels = weight.shape[1] if isinstance(conv, nn.ConvTranspose2d) else weight.shape[0]
            bias = conv.bias.detach().double().cpu() if conv.bias is not None else torch.zeros(out_channels)
            largest_bias = bias.abs().max().item() if bias.numel() else 0.0
            if largest_bias > 0:  # the bias's integer stays below 2^50, within the sums' headroom
                shift = min(shift, 50 - FRACTION_BITS - math.ceil(math.log2(largest_bias)))
            setattr(net, f"weight{i}", torch.round(weight * 2.0**shift).long())
            setattr(net, f"bias{i}", torch.round(bias * 2.0 ** (FRACTION_BITS + shift)).long())
            setattr(net, f"shift{i}", torch.tensor(shift, dtype=torch.int64))
            transposed = isinstance(conv, nn.ConvTranspose2d)
            output_padding = conv.output_padding[0] if transposed else 0
            kinds.append([int(transposed), conv.stride[0], conv.padding[0], output_padding, int(relu)])
        net.layer_kinds = torch.tensor(kinds, dtype=torch.int64)
        if input_offset is not None:
            net.input_offset = torch.round(input_offset.detach().double().cpu().reshape(-1) * 2.0**FRACTION_BITS).long()
        if scale_table is not None:
            net.thresholds = torch.floor(scale_table.detach().double().cpu()[:-1] * 2.0**FRACTION_BITS).long()
        return net

    @property
    def ready(self) -> bool:
        """Whether quantized weights are present (older weight files have none)."""
        return self.layer_kinds.numel() > 0

    def forward(self, z_symbols: Tensor) -> Tensor:
        """The fixed-point output (int32, units of 2^-F) for integer hyper-latent symbols (1, C, h, w)."""
        a = z_symbols.detach().cpu().double().clamp(-_LIMIT, _LIMIT) * 2.0**FRACTION_BITS
        return self.run(a + self.input_offset.cpu().double().view(1, -1, 1, 1))

    def run(self, a: Tensor) -> Tensor:
        """The int32 fixed-point output for a fixed-point input (integers, units of 2^-F, in an int32 or
        float tensor), saturated at ±2^`ACTIVATION_BITS` like every activation."""
        a = as_activation(a.detach().cpu())
        for i in range(len(self.layer_kinds)):
            layer = functools.partial(self._layer_on_rows, i, a)
            a = _in_bands(layer, a.shape[2], self._rows_per_input_row(i), self._margin(i))
        return a

    def run_concatenated(self, parts: list[Tensor], band_rows: int | None = None) -> Tensor:
        """`run` on the channel concatenation of `parts`, band by band of rows when the network allows it.

        A network whose layers all keep the number of rows ('same' convolutions:
        the channel-wise slice networks) sees `margin` rows either side of a row;
        each band is run on its rows plus that margin, and the kept rows are the
        same exact integers as in one piece. Memory is one band of the
        concatenation instead of the whole of it (gigabytes of float64 at
        8000×8000 pixels).
        """
        layers = range(len(self.layer_kinds))
        if any(self._rows_per_input_row(i) != 1 for i in layers):
            return self.run(torch.cat(parts, dim=1))
        margin = sum(self._margin(i) for i in layers)
        band_rows = band_rows or max(1, BAND_ROWS - 2 * margin)  # a band plus its margin: one piece per layer

        def network_on_rows(start: int, stop: int) -> Tensor:
            return self.run(torch.cat([p[:, :, start:stop] for p in parts], dim=1))

        return _in_bands(network_on_rows, parts[0].shape[2], 1, margin, band_rows)

    def _margin(self, i: int) -> int:
        """Rows of context layer i needs on either side of a row: half its kernel's height."""
        return getattr(self, f"weight{i}").shape[-2] // 2

    def _rows_per_input_row(self, i: int) -> int:
        """Output rows per input row of layer i if it can run in row bands, else 0: 'same'
        convolutions (1) and transposed ones with output_padding = stride − 1 (stride)."""
        transposed, stride, padding, output_padding, _ = self.layer_kinds[i].tolist()
        kernel = getattr(self, f"weight{i}").shape[-2]
        same = kernel % 2 == 1 and padding == kernel // 2
        same = same and (output_padding == stride - 1 if transposed else stride == 1)
        return (stride if transposed else 1) if same else 0

    def _layer_on_rows(self, i: int, a: Tensor, start: int, stop: int) -> Tensor:
        """Layer i on input rows start..stop: its exact sums, floored back to 2^-F, ReLU, saturation."""
        out = self._layer(i, a[:, :, start:stop].double())
        out = out.div_(2.0 ** int(getattr(self, f"shift{i}"))).floor_()
        relu = bool(self.layer_kinds[i, 4])
        return out.clamp_(min=0.0 if relu else -_LIMIT, max=_LIMIT).to(torch.int32)

    def _layer(self, i: int, a: Tensor) -> Tensor:
        """Layer i's integer weighted sum (before its power-of-two rescaling)."""
        transposed, stride, padding, output_padding, _ = self.layer_kinds[i].tolist()
        weight = getattr(self, f"weight{i}").cpu().double()
        bias = getattr(self, f"bias{i}").cpu().double()
        if transposed:
            return F.conv_transpose2d(a, weight, bias, stride, padding, output_padding)
        return F.conv2d(a, weight, bias, stride, padding)

    def indexes(self, z_symbols: Tensor) -> Tensor:
        """int32 CDF-table index of every element of y: how many thresholds lie below its scale."""
        return self.indexes_of(self(z_symbols))

    def indexes_of(self, scales: Tensor) -> Tensor:
        """int32 CDF-table indexes of fixed-point scales (part of this network's output)."""
        thresholds = self.thresholds.cpu()
        if scales.is_floating_point():
            thresholds = thresholds.double()
        else:  # same dtype as the scales, or bucketize converts them: thresholds above 2^28 count alike
            thresholds = thresholds.clamp(-_INT_LIMIT - 1, _INT_LIMIT + 1).to(scales.dtype)
        return torch.bucketize(scales, thresholds, out_int32=True, right=False)


def as_activation(a: Tensor) -> Tensor:
    """Fixed-point integers (int32, or float holding integers) as an int32 activation, saturated at
    ±2^`ACTIVATION_BITS` as every layer's input is; NaN (only a diverged model makes one) becomes 0."""
    if a.dtype == torch.int32:
        return a.clamp(-_INT_LIMIT, _INT_LIMIT)
    return a.double().nan_to_num(0.0).clamp(-_LIMIT, _LIMIT).to(torch.int32)


def with_float_copies(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`state` plus the float weights of every integer network in it whose float network is absent.

    An integer network ``X_integer`` (weights files: ``h_s_integer``,
    ``entropy_parameters_integer.i``) is the quantized copy of the float network
    ``X``, an ``nn.Sequential`` of convolutions each optionally followed by a ReLU
    (`IntegerSynthesis.quantize` allows nothing else). Weights files from 0.5.3 on
    store only the integer copy, which is what coding reads; training and
    refinement (codec/refine.py) need a float network, and this gives back the
    one that the integer copy computes: weight = w·2^-q, bias = b·2^-(F+q), each
    convolution at the position of ``X`` that its ReLU flags imply. The weights
    are exact in float32 (|w| < 2^13); the error against the trained float
    network is the quantization's, at most half a step of 2^-q.
    """
    state = dict(state)
    for key in [k for k in state if k.endswith("layer_kinds") and "_integer" in k and state[k].numel()]:
        prefix = key.removesuffix("layer_kinds")
        float_prefix = prefix.replace("_integer", "", 1)
        if any(k.startswith(float_prefix) for k in state):
            continue
        layers = range(len(state[key]))
        if not all(f"{prefix}{name}{i}" in state for i in layers for name in ("shift", "weight", "bias")):
            continue  # an incomplete integer network: nothing derived, loading reports what is missing
        position = 0
        for i, relu in enumerate(state[key][:, 4].tolist()):
            shift = int(state[f"{prefix}shift{i}"])
            weight = state[f"{prefix}weight{i}"].double() * 2.0**-shift
            bias = state[f"{prefix}bias{i}"].double() * 2.0 ** -(FRACTION_BITS + shift)
            state[f"{float_prefix}{position}.weight"] = weight.float()
            state[f"{float_prefix}{position}.bias"] = bias.float()
            position += 2 if relu else 1
    return state


def _in_bands(
    layer: Callable[[int, int], Tensor], rows: int, upsampling: int, margin: int, band_rows: int | None = None
) -> Tensor:
    """`layer(start, stop)`, a layer applied to input rows start..stop, over all `rows` in bands of
    `band_rows` (default `BAND_ROWS`) input rows, each with `margin` rows of context.

    Float64 convolution unfolds its input (im2col): for an 8000-pixel-wide image
    that buffer alone would take gigabytes. A layer whose output has exactly
    `upsampling` rows per input row ('same' convolutions, and transposed ones
    with output_padding = stride − 1) can run band by band; the margin covers
    its kernel, so each kept output is the same exact integer sum as in one
    piece. Other layers (`upsampling` = 0) run in one piece.
    """
    band_rows = band_rows or BAND_ROWS
    if not upsampling or rows <= band_rows + 2 * margin:
        return layer(0, rows)
    out = None
    for top in range(0, rows, band_rows):
        start, stop = max(top - margin, 0), min(top + band_rows + margin, rows)
        band = layer(start, stop)
        if out is None:  # filled in place: the bands and their concatenation are never held together
            out = band.new_empty((*band.shape[:2], rows * upsampling, band.shape[3]))
        keep, kept_rows = (top - start) * upsampling, (min(top + band_rows, rows) - top) * upsampling
        out[:, :, top * upsampling : top * upsampling + kept_rows] = band[:, :, keep : keep + kept_rows]
    return out
