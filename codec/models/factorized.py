"""Factorized prior: Ballé, Laparra, Simoncelli 2017.

"End-to-end optimized image compression", ICLR 2017, arXiv:1611.01704.

The latent y = g_a(x) is rounded and coded with a fully factorized density:
one learned univariate distribution per channel, shared across all spatial
positions (compressai's EntropyBottleneck, the non-parametric density of the
2018 paper's appendix 6.1). It is the simplest model that trains end to end
for rate–distortion, and the baseline every later prior improves on: it cannot
adapt to the content of a particular image, so the side information the
hyperprior adds pays for itself wherever the local variance changes.

Symbols are coded as round(y - median) per channel, so that the rounding grid
sits on each channel's median (Ballé et al.'s "noise-free" quantization offset).
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel
from torch import Tensor

from codec import entropy
from codec.layers import analysis_transform, synthesis_transform
from codec.models.base import (
    PAD_MULTIPLE,
    LatentCodecModel,
    Rounding,
    channel_indexes,
    factorized_likelihood,
)


class FactorizedPrior(LatentCodecModel):
    """g_a / g_s with GDN and a per-channel learned density for y."""

    name = "bmshj2018-factorized"
    stream_names = ("y",)

    def __init__(self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = ()) -> None:
        super().__init__(N, M, lambdas)
        self.g_a = analysis_transform(N, M)
        self.g_s = synthesis_transform(N, M)
        self.entropy_bottleneck = EntropyBottleneck(M)

    def entropy_models(self) -> dict[str, EntropyModel]:
        return {"y": self.entropy_bottleneck}

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        assert height % PAD_MULTIPLE == 0 and width % PAD_MULTIPLE == 0
        return {"y": (self.M, height // 16, width // 16)}

    def quantize_latent(self, y: Tensor, rounding: Rounding | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        y_hat, y_likelihoods = factorized_likelihood(self.entropy_bottleneck, y, self._medians(), rounding)
        return y_hat, {"y": y_likelihoods}

    def _medians(self) -> Tensor:
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)

    @torch.no_grad()
    def compress_latent(self, y: Tensor, coder: str = "range") -> list[bytes]:
        symbols = torch.round(y - self._medians()).to(torch.int32)
        indexes = channel_indexes(*y.shape[1:])
        return [entropy.encode(symbols.cpu().numpy(), indexes.numpy(), self.tables("y"), coder)]

    @torch.no_grad()
    def decompress_latent(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", terminated: bool = True
    ) -> Tensor:
        (y_string,) = streams
        shape = self.latent_shapes(height, width)["y"]
        indexes = channel_indexes(*shape)
        symbols = entropy.decode(y_string, indexes.numpy(), self.tables("y"), coder, terminated)
        medians = self._medians()
        return torch.from_numpy(symbols).to(medians).view(1, *shape) + medians
