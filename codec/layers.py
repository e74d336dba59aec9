"""Convolutional transforms shared by the Ballé-style models.

The analysis transform g_a maps an RGB image to a latent with 16× fewer rows and
columns; the synthesis transform g_s inverts it. Both follow Ballé, Laparra,
Simoncelli 2017, "End-to-end optimized image compression" (ICLR), in the form
reused by Ballé et al. 2018: four 5×5 convolutions of stride 2, with generalized
divisive normalization (GDN) between them in g_a and its approximate inverse
(IGDN) in g_s. GDN is a joint local gain control that Gaussianizes natural-image
statistics better than pointwise nonlinearities at the same width.
"""

from __future__ import annotations

import math

import torch
from compressai.layers import GDN
from torch import Tensor, nn


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded convolution that downsamples by `stride`."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)


def deconv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by exactly `stride`."""
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding=kernel_size // 2,
        output_padding=stride - 1,
    )


def analysis_transform(N: int, M: int) -> nn.Sequential:
    """g_a: 3 → N → N → N → M channels, each step a stride-2 5×5 convolution."""
    return nn.Sequential(
        conv(3, N), GDN(N),
        conv(N, N), GDN(N),
        conv(N, N), GDN(N),
        conv(N, M),
    )  # fmt: skip


def synthesis_transform(N: int, M: int) -> nn.Sequential:
    """g_s: M → N → N → N → 3 channels, mirroring g_a with IGDN."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True),
        deconv(N, 3),
    )  # fmt: skip


class GainUnits(nn.Module):
    """Per-channel gains that make one model cover a range of rates.

    Cui, Wang, Gao, Bai, Tang, Xu 2021, "Asymmetric gained deep image
    compression with continuous rate adaptation" (CVPR). The latent y is
    multiplied channel-wise by a gain vector before quantization and the
    decoded ŷ by an inverse-gain vector before synthesis: a larger gain means
    finer quantization, hence more bits and less distortion. One pair of
    vectors is trained for each λ in `lambdas` (sampled per batch); between
    them, the vectors are interpolated linearly in the log domain (the paper's
    exponential interpolation), which makes the rate continuous in log λ.

    Gains are stored as logarithms, so they stay positive. They start at
    sqrt(λ / λ_centre): the quantization step that balances rate and squared
    error scales as λ^(-1/2). λ_centre is the geometric mean of the levels, or,
    for a model started from weights trained at one λ, that λ, whose gains are
    then exactly 1.
    """

    def __init__(self, channels: int, lambdas: tuple[float, ...], centre: float | None = None) -> None:
        super().__init__()
        if len(lambdas) < 2 or any(b <= a for a, b in zip(lambdas, lambdas[1:])) or lambdas[0] <= 0:
            raise ValueError("gain units need at least two increasing positive λ")
        self.register_buffer("lambda_levels", torch.tensor(lambdas, dtype=torch.float64))
        log_lambdas = self.log_lambdas
        log_centre = log_lambdas.mean() if centre is None else math.log(centre)
        start = (0.5 * (log_lambdas - log_centre)).float().view(-1, 1).repeat(1, channels)
        self.log_gain = nn.Parameter(start.clone())
        self.log_inverse_gain = nn.Parameter(-start.clone())

    @property
    def lambdas(self) -> tuple[float, ...]:
        return tuple(self.lambda_levels.tolist())

    @property
    def log_lambdas(self) -> Tensor:
        return self.lambda_levels.double().cpu().log()

    def _interpolate(self, table: Tensor, lmbda: float) -> Tensor:
        u = min(max(math.log(lmbda), float(self.log_lambdas[0])), float(self.log_lambdas[-1]))
        k = min(int(torch.searchsorted(self.log_lambdas, torch.tensor(u, dtype=torch.float64), right=True)) - 1,
                len(self.log_lambdas) - 2)  # fmt: skip
        t = (u - float(self.log_lambdas[k])) / float(self.log_lambdas[k + 1] - self.log_lambdas[k])
        return ((1 - t) * table[k] + t * table[k + 1]).exp().view(1, -1, 1, 1)

    def gain(self, lmbda: float) -> Tensor:
        """(1, C, 1, 1) encoder gain for rate parameter λ (clamped to the trained range)."""
        return self._interpolate(self.log_gain, lmbda)

    def inverse_gain(self, lmbda: float) -> Tensor:
        """(1, C, 1, 1) decoder gain for rate parameter λ."""
        return self._interpolate(self.log_inverse_gain, lmbda)

    @torch.no_grad()
    def resampled(self, lambdas: tuple[float, ...]) -> GainUnits:
        """Gain units for other λ levels, started from these trained ones: a level inside the
        trained range takes the interpolated gains; one outside continues from the nearest end
        with slope ±1/2 in log λ, the quantization-step rule that also sets the initial gains.
        Used to widen the rate range of a trained model before fine-tuning it."""
        units = GainUnits(self.log_gain.shape[1], lambdas)
        low, high = self.lambdas[0], self.lambdas[-1]
        for k, lmbda in enumerate(lambdas):
            edge = min(max(lmbda, low), high)
            shift = 0.5 * (math.log(lmbda) - math.log(edge))
            units.log_gain[k] = self.gain(edge).log().flatten() + shift
            units.log_inverse_gain[k] = self.inverse_gain(edge).log().flatten() - shift
        return units.to(self.log_gain.device)
