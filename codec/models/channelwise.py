"""Channel-wise autoregressive entropy model: Minnen & Singh 2020.

"Channel-wise autoregressive entropy models for learned image compression",
ICIP 2020, arXiv:2007.08739.

The mean-scale hyperprior predicts every element of y from the side
information z alone. Spatial context models (Minnen et al. 2018) add the
already decoded neighbours of each element, which saves bits but makes the
decoder a loop over every latent position (seconds per Kodak image). Minnen &
Singh instead split y along its channels into a few slices and code them one
after another: the mean and scale of slice i come from the hyperprior's
outputs and from all of slices 0..i−1, everywhere in the image at once. The
decoder runs one small network per slice instead of one per position.

Structure (one file, as in the paper, with the changes listed below):

* g_a, g_s, h_a, h_s and the entropy models are the mean-scale hyperprior's
  (codec/models/meanscale.py); h_s gives 2M channels (scales, then means);
* y is split into `NUM_SLICES` slices of M / `NUM_SLICES` channels; slice i is
  coded as a Gaussian whose mean and scale come from an *entropy-parameter
  transform* of [h_s output, ŷ slices 0..i−1] (one network per slice);
* latent residual prediction (LRP): after slice i is decoded, another small
  network predicts the quantization error of that slice from the same support
  plus the slice, bounded by 0.5·tanh, and adds it to ŷ before synthesis.

Changes from the paper, and why:

* Determinism. The entropy-parameter transforms choose CDF tables, so, like
  h_s, they run as integer-exact networks at coding time (codec/integer.py):
  their inputs are the fixed-point h_s output and the decoded slices, both
  exact multiples of 2^-14, so every machine computes the same means and
  indexes. LRP does not choose tables and stays float; for the same reason the
  support of later slices is ŷ *before* LRP (the paper feeds it after LRP),
  which keeps tanh out of the integer path.
* One transform per slice predicts both mean and scale (the paper has one
  each), from the scales and means of h_s together, and it is a 1×1
  convolution then two 3×3 ones, 2M/3 and M/2 wide (the paper: three 5×5
  convolutions, 224 and 128 wide, at M = 320). This keeps the integer
  networks, which run in float64 on the CPU, within the decode-time budget of
  about twice the scale hyperprior's.
* `NUM_SLICES` = 4 (the paper finds 10 best at M = 320; ours are M = 96, or
  192 since 0.4.0, and the container has at most 8 streams).

Training uses additive noise for the rate terms and straight-through rounding
for the ŷ that feeds later slices, LRP and g_s (as the paper does), so those
networks train on the rounded values they see when coding (h_s still sees the
noisy ẑ of the factorized bottleneck, as in the other models).

The streams are sent in decoding order: z, then the slices y0 … y3.
"""

from __future__ import annotations

import torch
from compressai.ops import quantize_ste
from torch import Tensor, nn

from codec import entropy
from codec.integer import FRACTION_BITS, IntegerSynthesis, as_activation
from codec.layers import conv
from codec.models.base import (
    PAD_MULTIPLE,
    Rounding,
    channel_indexes,
    factorized_likelihood,
    full_precision,
    gaussian_likelihood,
)
from codec.models.meanscale import MeanScaleHyperprior
from codec.tiling import one_thread, onednn

NUM_SLICES = 4
LRP_BAND_ROWS = 64  # latent rows per band of the residual prediction (bounds its float buffers)
_ONE = 2.0**FRACTION_BITS


def entropy_parameters(in_channels: int, M: int, out_channels: int) -> nn.Sequential:
    """The mean and scale of one slice from its support: 1×1, then two 3×3 convolutions."""
    return nn.Sequential(
        conv(in_channels, M * 2 // 3, kernel_size=1, stride=1), nn.ReLU(inplace=True),
        conv(M * 2 // 3, M // 2, kernel_size=3, stride=1), nn.ReLU(inplace=True),
        conv(M // 2, out_channels, kernel_size=3, stride=1),
    )  # fmt: skip


def residual_prediction(in_channels: int, M: int, out_channels: int) -> nn.Sequential:
    """LRP: the quantization error of a decoded slice from its support and the slice (before tanh)."""
    return nn.Sequential(
        conv(in_channels, M // 2, kernel_size=1, stride=1), nn.ReLU(inplace=True),
        conv(M // 2, out_channels, kernel_size=3, stride=1),
    )  # fmt: skip


class ChannelwiseAutoregressive(MeanScaleHyperprior):
    """The mean-scale hyperprior with y coded in channel slices, each conditioned on the ones before."""

    name = "minnen2020-channelwise"
    stream_names = ("z", *(f"y{i}" for i in range(NUM_SLICES)))

    def __init__(self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = ()) -> None:
        super().__init__(N, M, lambdas)
        if M % NUM_SLICES:
            raise ValueError(f"M={M} does not split into {NUM_SLICES} slices")
        s = self.slice_channels = M // NUM_SLICES
        self.entropy_parameters = nn.ModuleList(entropy_parameters(2 * M + i * s, M, 2 * s) for i in range(NUM_SLICES))
        self.residual_prediction = nn.ModuleList(
            residual_prediction(2 * M + (i + 1) * s, M, s) for i in range(NUM_SLICES)
        )
        self.entropy_parameters_integer = nn.ModuleList(IntegerSynthesis(3) for _ in range(NUM_SLICES))

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        assert height % PAD_MULTIPLE == 0 and width % PAD_MULTIPLE == 0
        slices = {f"y{i}": (self.slice_channels, height // 16, width // 16) for i in range(NUM_SLICES)}
        return {"z": (self.N, height // 64, width // 64), **slices}

    def _lrp(self, i: int, support: list[Tensor]) -> Tensor:
        return 0.5 * torch.tanh(self.residual_prediction[i](torch.cat(support, dim=1)))

    def quantize_latent(self, y: Tensor, rounding: Rounding | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = factorized_likelihood(self.entropy_bottleneck, z, self._z_medians(), rounding)
        hyper = self.h_s(z_hat)
        decoded, y_hat, likelihoods = [], [], []
        for i, y_slice in enumerate(y.chunk(NUM_SLICES, dim=1)):
            scales, means = self.entropy_parameters[i](torch.cat([hyper, *decoded], dim=1)).chunk(2, dim=1)
            slice_hat, slice_likelihoods = gaussian_likelihood(
                self.gaussian_conditional, y_slice, scales, means, rounding
            )
            if rounding is None:  # training: noise for the rate, but the decoder's values for the context
                with full_precision(y):  # in bf16, round(y − μ) + μ would not be the decoder's value
                    slice_hat = quantize_ste(y_slice.float() - means.float()) + means.float()
            decoded.append(slice_hat)
            likelihoods.append(slice_likelihoods)
            y_hat.append(decoded[-1] + self._lrp(i, [hyper, *decoded]).float())
        return torch.cat(y_hat, dim=1), {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods}

    @torch.no_grad()
    def update_tables(self) -> None:
        super().update_tables()
        self.entropy_parameters_integer = nn.ModuleList(
            IntegerSynthesis.quantize(network) for network in self.entropy_parameters
        )

    def integer_networks_ready(self) -> bool:
        return self.h_s_integer.ready and all(net.ready for net in self.entropy_parameters_integer)

    def _hyper(self, z_symbols: Tensor) -> Tensor:
        """The fixed-point h_s output (scales, then means) from the integer network, as int32."""
        if not self.integer_networks_ready():
            raise RuntimeError("model has no integer entropy-parameter networks: export it with update_tables()")
        return self.h_s_integer(z_symbols)

    def _slice_parameters(self, i: int, support: list[Tensor]) -> tuple[Tensor, Tensor]:
        """CDF indexes and int32 fixed-point means of slice i from the int32 fixed-point support."""
        scales, means = self.entropy_parameters_integer[i].run_concatenated(support).chunk(2, dim=1)
        return self.h_s_integer.indexes_of(scales), means.clone()  # the scales' half is freed

    @torch.no_grad()
    def compress_latent(self, y: Tensor, coder: str = "range") -> list[bytes]:
        z = self.h_a(y)
        z_symbols = torch.round(z - self._z_medians())
        support = [self._hyper(z_symbols)]
        streams = [
            entropy.encode(
                z_symbols.int().cpu().numpy(), channel_indexes(*z.shape[1:]).numpy(), self.tables("z"), coder
            )
        ]
        for i, y_slice in enumerate(y.cpu().chunk(NUM_SLICES, dim=1)):
            indexes, means = self._slice_parameters(i, support)
            symbols = torch.round(y_slice.double() - means.double() / _ONE).int()
            streams.append(entropy.encode(symbols.numpy(), indexes.numpy(), self.tables("y"), coder))
            if i + 1 < NUM_SLICES:  # the last slice is no one's support
                support.append(as_activation(_fixed_point(symbols, means)))
        return streams

    @torch.no_grad()
    def decompress_latent(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", terminated: bool = True
    ) -> Tensor:
        shapes = self.latent_shapes(height, width)
        z_indexes = channel_indexes(*shapes["z"])
        z_symbols = entropy.decode(streams[0], z_indexes.numpy(), self.tables("z"), coder, terminated)
        support = [self._hyper(torch.from_numpy(z_symbols).view(1, *shapes["z"]))]
        decoded = torch.empty(1, self.M, height // 16, width // 16)  # ŷ before LRP, slice by slice
        for i, (stream, slice_hat) in enumerate(zip(streams[1:], decoded.chunk(NUM_SLICES, dim=1), strict=True)):
            indexes, means = self._slice_parameters(i, support)
            symbols = entropy.decode(stream, indexes.numpy(), self.tables("y"), coder, terminated)
            del indexes
            fixed_point = _fixed_point(torch.from_numpy(symbols).view(1, *shapes[f"y{i}"]), means)
            del symbols, means
            if i + 1 < NUM_SLICES:
                support.append(as_activation(fixed_point))  # int32, as the slice networks take it: half of float64
            slice_hat.copy_(fixed_point.div_(_ONE))  # float64 → float32, rounded to nearest
            del fixed_point
        return self._with_residual_prediction(support[0], decoded)

    def _with_residual_prediction(self, hyper: Tensor, decoded: Tensor) -> Tensor:
        """ŷ for synthesis: each decoded slice plus its LRP, in float, with native kernels on one thread
        (oneDNN and, on some CPUs, the native kernels' matrix products round by the thread count).

        `hyper` is the h_s output (int32 fixed point, or float), `decoded` all slices before LRP.
        The networks run in bands of `LRP_BAND_ROWS` rows with one row of context either side
        (their 3×3 convolution's), so an 8000×8000 image never unfolds whole activations (the
        3×3 convolution's im2col buffer alone was 0.9 GB). A band sees the same inputs as one
        piece; its floats can differ in the last bit (the matrix products have other sizes),
        which reconstruction tolerates and table choice never sees. Latents of up to
        `LRP_BAND_ROWS` rows (images up to 1024 pixels high: all of Kodak) run in one piece.
        """
        device = self._z_medians().device
        rows, s = decoded.shape[2], self.slice_channels
        y_hat = torch.empty(decoded.shape, device=device)
        with onednn(False), one_thread():
            for top in range(0, rows, LRP_BAND_ROWS):
                start, stop = max(top - 1, 0), min(top + LRP_BAND_ROWS + 1, rows)
                kept = min(top + LRP_BAND_ROWS, rows) - top
                hyper_band = _as_float(hyper[:, :, start:stop]).to(device)
                decoded_band = decoded[:, :, start:stop].to(device)
                for i in range(NUM_SLICES):
                    band = decoded_band[:, i * s : (i + 1) * s]
                    band = band + self._lrp(i, [hyper_band, decoded_band[:, : (i + 1) * s]])
                    y_hat[:, i * s : (i + 1) * s, top : top + kept] = band[:, :, top - start : top - start + kept]
        return y_hat


def _fixed_point(symbols: Tensor, means: Tensor) -> Tensor:
    """A decoded slice in fixed point, symbols·2^F + means, as float64 (exact: below 2^53)."""
    return symbols.double().mul_(_ONE).add_(means)


def _as_float(hyper: Tensor) -> Tensor:
    """The h_s output as float32 values: int32 fixed point scaled by 2^-F (exact scaling), float as is."""
    return hyper.float() / _ONE if hyper.dtype == torch.int32 else hyper.float()
