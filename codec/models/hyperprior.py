"""Scale hyperprior: Ballé, Minnen, Singh, Hwang, Johnston 2018.

"Variational image compression with a scale hyperprior", ICLR 2018,
arXiv:1802.01436.

The factorized prior codes every image with the same per-channel densities.
Here a second, small autoencoder (h_a, h_s) sees the magnitude |y| of the main
latent and sends side information z; from the decoded z the decoder predicts a
standard deviation for every element of y, which is then coded as a zero-mean
Gaussian convolved with a unit uniform (compressai's GaussianConditional). The
few bits spent on z capture the spatially varying scale of y, which the
factorized model cannot.

Design choices from the paper: h_a takes |y| (the scales are sign-free);
h_a is a 3×3 stride-1 convolution then two 5×5 stride-2 convolutions with
ReLUs; h_s mirrors it and ends in a ReLU so the predicted scales are
non-negative. z itself is coded with a factorized EntropyBottleneck. The
Gaussian scales are quantized to a fixed table of 64 log-spaced values between
0.11 and 256 (as in CompressAI), one CDF table each.

Coding does not use the float h_s to choose those tables: at export, h_s is
quantized into an integer-exact copy (codec/integer.py) whose table indexes
are identical on every machine, thread count and device. Weights exported
before that copy existed still code with the float h_s.

The streams are sent in decoding order: z first, then y.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from torch import Tensor, nn

from codec import entropy
from codec.integer import IntegerSynthesis
from codec.layers import analysis_transform, conv, deconv, synthesis_transform
from codec.models.base import (
    PAD_MULTIPLE,
    LatentCodecModel,
    Rounding,
    channel_indexes,
    factorized_likelihood,
    gaussian_likelihood,
)

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64


def scale_table() -> list[float]:
    """64 log-spaced Gaussian scales in [0.11, 256], one CDF table each."""
    step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (SCALE_LEVELS - 1)
    return [math.exp(math.log(SCALE_MIN) + i * step) for i in range(SCALE_LEVELS)]


class ScaleHyperprior(LatentCodecModel):
    """g_a / g_s with GDN, a hyper-autoencoder predicting the scales of y."""

    name = "bmshj2018-hyperprior"
    stream_names = ("z", "y")

    def __init__(self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = ()) -> None:
        super().__init__(N, M, lambdas)
        self.g_a = analysis_transform(N, M)
        self.g_s = synthesis_transform(N, M)
        self.h_a = nn.Sequential(
            conv(M, N, kernel_size=3, stride=1), nn.ReLU(inplace=True),
            conv(N, N), nn.ReLU(inplace=True),
            conv(N, N),
        )  # fmt: skip
        self.h_s = nn.Sequential(
            deconv(N, N), nn.ReLU(inplace=True),
            deconv(N, N), nn.ReLU(inplace=True),
            conv(N, M, kernel_size=3, stride=1), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(scale_table())
        self.h_s_integer = IntegerSynthesis(num_layers=3)

    def entropy_models(self) -> dict[str, EntropyModel]:
        return {"z": self.entropy_bottleneck, "y": self.gaussian_conditional}

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        assert height % PAD_MULTIPLE == 0 and width % PAD_MULTIPLE == 0
        return {"z": (self.N, height // 64, width // 64), "y": (self.M, height // 16, width // 16)}

    def quantize_latent(self, y: Tensor, rounding: Rounding | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.h_a(torch.abs(y))
        z_hat, z_likelihoods = factorized_likelihood(self.entropy_bottleneck, z, self._z_medians(), rounding)
        scales = self.h_s(z_hat)
        y_hat, y_likelihoods = gaussian_likelihood(self.gaussian_conditional, y, scales, None, rounding)
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def _z_medians(self) -> Tensor:
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    @torch.no_grad()
    def update_tables(self) -> None:
        super().update_tables()
        self.h_s_integer = IntegerSynthesis.quantize(
            self.h_s, self._z_medians(), self.gaussian_conditional.scale_table
        ).to(self._z_medians().device)

    def _y_indexes(self, z_symbols: Tensor) -> Tensor:
        """CDF index of each element of y: its predicted scale, rounded up the table."""
        if self.h_s_integer.ready:
            return self.h_s_integer.indexes(z_symbols)
        return self.gaussian_conditional.build_indexes(self.h_s(z_symbols.to(self._z_medians()) + self._z_medians()))

    @torch.no_grad()
    def compress_latent(self, y: Tensor, coder: str = "range") -> list[bytes]:
        z = self.h_a(torch.abs(y))
        z_symbols = torch.round(z - self._z_medians())
        z_indexes = channel_indexes(*z.shape[1:])
        y_indexes = self._y_indexes(z_symbols)
        y_symbols = torch.round(y)
        return [
            entropy.encode(z_symbols.int().cpu().numpy(), z_indexes.numpy(), self.tables("z"), coder),
            entropy.encode(y_symbols.int().cpu().numpy(), y_indexes.cpu().numpy(), self.tables("y"), coder),
        ]

    @torch.no_grad()
    def decompress_latent(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", terminated: bool = True
    ) -> Tensor:
        z_string, y_string = streams
        shapes = self.latent_shapes(height, width)
        z_indexes = channel_indexes(*shapes["z"])
        z_symbols = entropy.decode(z_string, z_indexes.numpy(), self.tables("z"), coder, terminated)
        y_indexes = self._y_indexes(torch.from_numpy(z_symbols).view(1, *shapes["z"]))
        y_symbols = entropy.decode(y_string, y_indexes.cpu().numpy(), self.tables("y"), coder, terminated)
        return torch.from_numpy(y_symbols).to(self._z_medians()).view(1, *shapes["y"])
