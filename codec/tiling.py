"""Tiled analysis and synthesis transforms: bounded memory at any image size.

A full-image convolution over an 8000×8000 photo needs gigabytes for its first
activation alone (N channels at half resolution). The transforms are
convolutional with a small receptive field, so they can run tile by tile: each
tile is computed with a margin of real neighbouring context and only its
centre is kept. When the margin covers the receptive field, the kept values are
the same as those of the whole-image transform (up to float summation order),
so tiling changes neither the bitstream's meaning nor, measurably, the rate or
distortion (benchmarks/robustness_costs.py). The latent is still entropy coded
as one piece.

Receptive fields (four 5×5 layers of stride 2): a latent of g_a sees ±30
pixels around its centre, a pixel of g_s sees ±2 latents. The margins below
are at least twice that.

The synthesis keeps the pixels independent of the thread count: oneDNN's
1×1 convolution inside (I)GDN picks its blocking from the thread count, so the
same file would decode to pixels differing by one level between, say, 1 and 2
threads. The synthesis therefore runs layer by layer, GDN with PyTorch's native
kernels and the transposed convolutions with oneDNN, which are thread-count
invariant and about twice as fast as the native ones
(tests/test_determinism.py checks the result).
Across different CPUs the float transforms may still differ by a level on
rare pixels; the entropy-decoded latents never do (codec/integer.py).

Both transforms run on channels_last (NHWC) tensors, the layout oneDNN's
convolutions prefer: the analysis reads the (H, W, 3) pixels in that layout as
they are, and the synthesis converts the latent to it. On a 2-core AVX-512 Xeon
that cut the decode of a Kodak image by 28 % (hyperprior 345 → 249 ms, channel-wise
456 → 329 ms), with the same pixels bit for bit: the synthesis gives them in either
layout and at any thread count.

Peak memory is set by the tile size, not the image: at the default 1024-pixel
tiles the largest activation is about 90 MB at N=64 (twice that at N=128, the
shipped default since 0.7.0); the whole latent y and the 8-bit image are the
only full-size arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

DOWNSAMPLING = 16  # pixels per latent element along each side
TILE = 1024  # pixels per tile side (kept part), a multiple of 64
ANALYSIS_MARGIN = 64  # pixels of context on each side of an analysis tile
SYNTHESIS_MARGIN = 4  # latent elements of context on each side of a synthesis tile


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each kept span and (start, stop) of its span with margin, in one dimension."""
    spans = []
    for start in range(0, length, tile):
        stop = min(start + tile, length)
        spans.append((start, stop, max(start - margin, 0), min(stop + margin, length)))
    return spans


@torch.no_grad()
def analysis(g_a: nn.Module, image: np.ndarray, device: str = "cpu", tile: int = TILE) -> Tensor:
    """g_a of a uint8 (H, W, 3) image whose sides are multiples of `DOWNSAMPLING`, tile by tile."""
    height, width = image.shape[:2]
    if height % DOWNSAMPLING or width % DOWNSAMPLING or tile % DOWNSAMPLING:
        raise ValueError("image sides and tile size must be multiples of 16")
    y = None
    for top, bottom, outer_top, outer_bottom in _spans(height, tile, ANALYSIS_MARGIN):
        for left, right, outer_left, outer_right in _spans(width, tile, ANALYSIS_MARGIN):
            patch = torch.tensor(image[outer_top:outer_bottom, outer_left:outer_right])
            x = patch.to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255)
            y_patch = g_a(x)  # channels_last already: the permuted view of (H, W, 3) pixels
            if y is None:
                y = y_patch.new_empty(1, y_patch.shape[1], height // DOWNSAMPLING, width // DOWNSAMPLING)
            y[:, :, top // DOWNSAMPLING : bottom // DOWNSAMPLING, left // DOWNSAMPLING : right // DOWNSAMPLING] = (
                y_patch[
                    :,
                    :,
                    (top - outer_top) // DOWNSAMPLING : (bottom - outer_top) // DOWNSAMPLING,
                    (left - outer_left) // DOWNSAMPLING : (right - outer_left) // DOWNSAMPLING,
                ]
            )
    assert y is not None
    return y


@contextlib.contextmanager
def onednn(enabled: bool) -> Iterator[None]:
    """A region where oneDNN kernels are on or off (off: PyTorch's native, thread-count-invariant ones)."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """A region where torch runs on one CPU thread: the native convolution's matrix product (MKL's
    sgemm on AVX-512 Xeons) splits its sums by the thread count, so its last bits depend on it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _synthesize(g_s: nn.Module, y_hat: Tensor) -> Tensor:
    """g_s with oneDNN only for its transposed convolutions (see the module docstring)."""
    if not isinstance(g_s, nn.Sequential):
        with onednn(False):
            return g_s(y_hat)
    x = y_hat.contiguous(memory_format=torch.channels_last)
    for layer in g_s:
        with onednn(isinstance(layer, nn.ConvTranspose2d)):
            x = layer(x)
    return x


@dataclass(frozen=True)
class SynthesisTile:
    """One tile of a tiled synthesis: which latent rows and columns it reads (margin included),
    which part of their synthesis it keeps, and where that part lies in the output image."""

    latent: tuple[slice, slice]
    kept: tuple[slice, slice]
    pixels: tuple[slice, slice]


def synthesis_tiles(rows: int, columns: int, height: int, width: int, tile: int = TILE) -> Iterator[SynthesisTile]:
    """The tiles that synthesize the top-left (height, width) pixels of a (rows, columns) latent."""
    if tile % DOWNSAMPLING or height > rows * DOWNSAMPLING or width > columns * DOWNSAMPLING:
        raise ValueError("output size exceeds the latent, or tile size is not a multiple of 16")
    latent_tile = tile // DOWNSAMPLING
    for top, bottom, outer_top, outer_bottom in _spans(rows, latent_tile, SYNTHESIS_MARGIN):
        pixel_top, pixel_bottom = top * DOWNSAMPLING, min(bottom * DOWNSAMPLING, height)
        if pixel_top >= height:
            break
        for left, right, outer_left, outer_right in _spans(columns, latent_tile, SYNTHESIS_MARGIN):
            pixel_left, pixel_right = left * DOWNSAMPLING, min(right * DOWNSAMPLING, width)
            if pixel_left >= width:
                break
            row0, col0 = (top - outer_top) * DOWNSAMPLING, (left - outer_left) * DOWNSAMPLING
            yield SynthesisTile(
                latent=(slice(outer_top, outer_bottom), slice(outer_left, outer_right)),
                kept=(slice(row0, row0 + pixel_bottom - pixel_top), slice(col0, col0 + pixel_right - pixel_left)),
                pixels=(slice(pixel_top, pixel_bottom), slice(pixel_left, pixel_right)),
            )


@torch.no_grad()
def synthesis(g_s: nn.Module, y_hat: Tensor, height: int, width: int, tile: int = TILE) -> np.ndarray:
    """The top-left (height, width) of g_s(y_hat) as a uint8 (height, width, 3) array, tile by tile."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    for piece in synthesis_tiles(*y_hat.shape[2:], height, width, tile):
        x = _synthesize(g_s, y_hat[:, :, piece.latent[0], piece.latent[1]])
        image[piece.pixels] = to_uint8(x[0, :, piece.kept[0], piece.kept[1]])
    return image


def to_uint8(x: Tensor) -> np.ndarray:
    """A (3, h, w) reconstruction in [0, 1] as uint8 (h, w, 3); NaN (from broken streams) becomes 0."""
    x = torch.nan_to_num(x.float(), nan=0.0)
    return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
