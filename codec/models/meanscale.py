"""Mean-scale hyperprior: Minnen, Ballé, Toderici 2018, without the spatial context.

"Joint autoregressive and hierarchical priors for learned image compression",
NeurIPS 2018, arXiv:1809.02736 (the "mean & scale hyperprior" of its
ablations; CompressAI's mbt2018-mean).

The scale hyperprior predicts only the spread of each element of y. Here the
hyper-synthesis also predicts its mean, so y is coded as a Gaussian with a
predicted mean and scale (convolved with a unit uniform), and the symbol is
the rounded residual round(y − μ). Predicting the mean removes the part of y
that the side information already explains, which saves bits at every rate.

Design choices from the paper: h_a sees y itself, not |y|, because the means
carry sign; h_s widens to 3M/2 channels and outputs 2M (scales, then means).
The paper uses LeakyReLU in the hyper-networks; this implementation uses ReLU
so that the integer copy of h_s (codec/integer.py) is a plain comparison, and
the last layer of h_s has no activation because means can be negative.

Determinism: both the scale indexes and the means come from the integer-exact
h_s, so the means are exact multiples of 2^-14 and the decoder adds the same
values to the decoded residuals on every machine.

The streams are sent in decoding order: z first, then y.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from codec import entropy
from codec.integer import FRACTION_BITS
from codec.layers import conv, deconv
from codec.models.base import Rounding, channel_indexes, factorized_likelihood, gaussian_likelihood
from codec.models.hyperprior import ScaleHyperprior


class MeanScaleHyperprior(ScaleHyperprior):
    """The scale hyperprior with a hyper-synthesis that predicts the mean and scale of every element of y.

    Entropy models, latent shapes and the export of the integer h_s are the
    scale hyperprior's; only h_a, h_s and the use of their outputs differ.
    """

    name = "mbt2018-mean"

    def __init__(self, N: int = 128, M: int = 192, lambdas: tuple[float, ...] = ()) -> None:
        super().__init__(N, M, lambdas)
        self.h_a = nn.Sequential(
            conv(M, N, kernel_size=3, stride=1), nn.ReLU(inplace=True),
            conv(N, N), nn.ReLU(inplace=True),
            conv(N, N),
        )  # fmt: skip
        self.h_s = nn.Sequential(
            deconv(N, M), nn.ReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.ReLU(inplace=True),
            conv(M * 3 // 2, M * 2, kernel_size=3, stride=1),
        )  # fmt: skip

    def quantize_latent(self, y: Tensor, rounding: Rounding | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.h_a(y)
        z_hat, z_likelihoods = factorized_likelihood(self.entropy_bottleneck, z, self._z_medians(), rounding)
        scales, means = self.h_s(z_hat).chunk(2, dim=1)
        y_hat, y_likelihoods = gaussian_likelihood(self.gaussian_conditional, y, scales, means, rounding)
        return y_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def integer_networks_ready(self) -> bool:
        return self.h_s_integer.ready  # the means need it: there is no float fallback

    def _y_parameters(self, z_symbols: Tensor) -> tuple[Tensor, Tensor]:
        """CDF index and mean of every element of y, both from the integer-exact h_s."""
        if not self.h_s_integer.ready:
            raise RuntimeError("model has no integer hyper-synthesis: export it with update_tables()")
        scales, means = self.h_s_integer(z_symbols).chunk(2, dim=1)
        return self.h_s_integer.indexes_of(scales), means.float() / 2.0**FRACTION_BITS  # exact scaling

    @torch.no_grad()
    def compress_latent(self, y: Tensor, coder: str = "range") -> list[bytes]:
        z = self.h_a(y)
        z_symbols = torch.round(z - self._z_medians())
        z_indexes = channel_indexes(*z.shape[1:])
        y_indexes, means = self._y_parameters(z_symbols)
        y_symbols = torch.round(y.cpu() - means)
        return [
            entropy.encode(z_symbols.int().cpu().numpy(), z_indexes.numpy(), self.tables("z"), coder),
            entropy.encode(y_symbols.int().numpy(), y_indexes.numpy(), self.tables("y"), coder),
        ]

    @torch.no_grad()
    def decompress_latent(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", terminated: bool = True
    ) -> Tensor:
        z_string, y_string = streams
        shapes = self.latent_shapes(height, width)
        z_indexes = channel_indexes(*shapes["z"])
        z_symbols = entropy.decode(z_string, z_indexes.numpy(), self.tables("z"), coder, terminated)
        y_indexes, means = self._y_parameters(torch.from_numpy(z_symbols).view(1, *shapes["z"]))
        y_symbols = entropy.decode(y_string, y_indexes.numpy(), self.tables("y"), coder, terminated)
        y_hat = torch.from_numpy(y_symbols).view(1, *shapes["y"]).float() + means
        return y_hat.to(self._z_medians())
