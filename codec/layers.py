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

from compressai.layers import GDN
from torch import nn


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
