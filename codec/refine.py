"""Encoder-side latent refinement: a better latent for the same decoder.

The analysis transform g_a is amortized: one network maps every image to a
latent that is good on average, not to the latent that minimizes this image's
rate–distortion loss. Campos, Meierhans, Djelouah and Schroers 2019 ("Content
adaptive optimization for neural image compression", CVPR workshops) and Yang,
Bamler and Mandt 2020 ("Improving inference for neural image compression",
NeurIPS) close part of this amortization gap at encode time: starting from
g_a(x), they optimize the latent itself by gradient descent on the loss the
model was trained for,

    J(y) = λ·255²·MSE(x, g_s(ŷ)) + bits(ŷ, ẑ) / pixels,

with the synthesis transform and the entropy models fixed. Only the encoder
changes: a refined file is an ordinary file, and decoders of any version that
read the model's files decode it.

Choices, and why:

* Rounding is relaxed by stochastic Gumbel annealing (SGA, Yang et al. 2020,
  section 3.2): each element of y, less the offset coding rounds around (the
  entropy model's median or predicted mean), is replaced by a random blend of
  its floor and its ceiling (the offset is 0 for the scale hyperprior). The odds of rounding down versus up are
  exp(−atanh(d)/τ) against exp(−atanh(1 − d)/τ), d being the distance to the
  floor, and the blend is a Gumbel-softmax (Concrete) sample at temperature τ
  (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017), so J is differentiable
  with respect to y (the logits are −atanh(·)/τ and the Concrete temperature
  is τ too, so the blend sharpens as 1/τ²). τ falls geometrically from 0.5 at
  the first step to 0.05 at the last: hot, every element can still change its
  integer; cold, the blend is the hard rounding the coder applies except close
  to a rounding boundary. On three 512×512 crops of training photos at 40
  steps, the crops this schedule was chosen on (Kodak, held out, is measured by
  benchmarks/refine.py), it lowered J by 3.2, 2.0, 2.7 and 4.5 % at λ 0.0018,
  0.0067, 0.0483 and 0.18, where straight-through rounding (round forward,
  identity backward; aecodec 0.5.0) lowered it by 2.3, 1.5, 2.3 and 4.4 %. The
  noise comes from a generator seeded alike for every image, so encoding is
  repeatable on one device (a CPU and a GPU draw different noise).
* Only y is optimized; z = h_a(y) follows it, because ``compress_latent``
  derives z from y (Yang et al. also refine z on its own). z is relaxed the
  same way.
* Adam, its learning rate constant for the first tenth of the steps and then
  falling linearly to zero. The rate grows with λ as 0.02·√(λ/0.18): at low λ
  most of y rounds to the mean and large steps overshoot, at high λ the
  amortized latent is furthest from the optimum. This rule was chosen on
  photos of the training sets, not on Kodak (benchmarks/refine.py measures it),
  for straight-through rounding; with the relaxation, three times larger was no
  better on the crops above.
* The last iterate is the result: at the final temperature the relaxation is
  nearly hard rounding. The loss the steps descend is only an estimate of the
  file's: the relaxation differs from rounding, the coded rate differs from the
  model's by about 1 %, and the coder rounds around the means of integer-exact
  twins of the entropy-parameter networks, which can send a value on a rounding
  boundary the other way. So the encoder (codec/api.py) codes both the plain
  and the refined latent and keeps the file whose real J is lower.
* Distortion counts only the image's own pixels, not the edge padding, and
  only what the decoder outputs: the reconstruction clipped to [0, 1] as the
  decoder clips it, and for a gray image the luma that the decoded RGB is
  converted to (ITU-R 601-2 weights, as Pillow's ``convert("L")``), so colour
  that the gray output drops costs nothing.

Each step costs about one synthesis transform forward and backward. The
distortion term is computed in the decoder's synthesis tiles
(``distortion_gradient``, codec/tiling.py), whose margins cover g_s's receptive
field, so its value and gradient are the whole image's while only one tile's
activations are held at a time. What still grows with the image is the rest:
the entropy models' graph at latent scale, the image and Adam's state (about
0.4 KiB per pixel with the shipped channel-wise model, benchmarks/refine.py
``--memory``). ``MAX_PIXELS`` bounds that memory and the time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from codec import tiling
from codec.errors import UnsupportedImageError
from codec.image import GRAY, RGB
from codec.models import LatentCodecModel
from codec.models.base import Rounding

MAX_PIXELS = 4096 * 3072  # 12.6 million: a 12-megapixel photo (4032×3024 pads to 4032×3072)
MAX_STEPS = 10_000
TEMPERATURE_START, TEMPERATURE_END = 0.5, 0.05
SEED = 0
METHOD = "stochastic Gumbel annealing, τ 0.5 → 0.05"  # recorded by benchmarks/refine.py
_EPSILON = 1e-6
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's RGB → L conversion


def learning_rate(lmbda: float) -> float:
    """Adam's initial learning rate for refining a latent coded at rate parameter λ."""
    return 0.02 * math.sqrt(lmbda / 0.18)


def check(steps: int, height: int, width: int) -> None:
    """Refuse a step count out of range, or an image (padded size) too large to refine in memory."""
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"refinement steps must be between 0 and {MAX_STEPS}, got {steps}")
    if steps and height * width > MAX_PIXELS:
        raise UnsupportedImageError(
            f"refinement is limited to images of {MAX_PIXELS} pixels (this one is {width}×{height} padded); "
            "encode it without refinement"
        )


def gumbel_rounding(tau: float, generator: torch.Generator) -> Rounding:
    """Stochastic Gumbel annealing's relaxed rounding at temperature `tau`: a Concrete sample between
    each value's floor and ceiling, rounding down with odds exp(−atanh(d)/τ) to exp(−atanh(1 − d)/τ)
    for a distance d to the floor (Yang, Bamler & Mandt 2020)."""

    def round_relaxed(values: Tensor) -> Tensor:
        floor = torch.floor(values).detach()
        distance = (values - floor).clamp(_EPSILON, 1 - _EPSILON)
        logits = torch.stack([-torch.atanh(distance), -torch.atanh(1 - distance)], dim=-1) / tau
        uniform = torch.rand(logits.shape, generator=generator, device=generator.device).to(logits)
        gumbel = -torch.log(-torch.log(uniform.clamp(_EPSILON, 1 - _EPSILON)))
        return floor + torch.softmax((logits + gumbel) / tau, dim=-1)[..., 1]

    return round_relaxed


def temperature(progress: float) -> float:
    """The relaxation's temperature τ at `progress` from the first step (0) to the last (1)."""
    return TEMPERATURE_START * (TEMPERATURE_END / TEMPERATURE_START) ** progress


def distortion(x_hat: Tensor, image: Tensor, mode: str) -> Tensor:
    """MSE between a (1, 3, H, W) reconstruction, clipped as the decoder clips it, and the image in
    [0, 1], in the colour mode the file decodes to: RGB, or for a gray image ('L', its three
    channels equal) the luma."""
    x_hat = x_hat.clamp(0, 1)
    if mode == GRAY:
        x_hat = torch.sum(x_hat * x_hat.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), dim=1, keepdim=True)
        image = image[:, :1]
    return torch.mean((x_hat - image) ** 2)


def distortion_gradient(
    g_s: torch.nn.Module, y_hat: Tensor, image: Tensor, mode: str, tile: int = tiling.TILE
) -> tuple[Tensor, Tensor]:
    """The distortion of g_s(ŷ) against the (1, 3, height, width) image (``distortion``) and its
    gradient with respect to ŷ, computed tile by tile as the decoder synthesizes (codec/tiling.py):
    each tile's margin covers g_s's receptive field, so the tiles' pixels are the whole image's and
    the sum of their gradients is the whole image's gradient, while only one tile's activations
    are held for the backward pass."""
    height, width = image.shape[2:]
    total = y_hat.new_zeros(())
    gradient = torch.zeros_like(y_hat)
    for piece in tiling.synthesis_tiles(*y_hat.shape[2:], height, width, tile):
        with torch.enable_grad():
            latent = y_hat[:, :, piece.latent[0], piece.latent[1]].detach()
            latent = latent.contiguous(memory_format=torch.channels_last).requires_grad_(True)  # tiling's layout
            x_hat = g_s(latent)[:, :, piece.kept[0], piece.kept[1]]
            target = image[:, :, piece.pixels[0], piece.pixels[1]]
            share = target.shape[2] * target.shape[3] / (height * width)
            loss = distortion(x_hat, target, mode) * share
            (piece_gradient,) = torch.autograd.grad(loss, [latent])
        total += loss.detach()
        gradient[:, :, piece.latent[0], piece.latent[1]] += piece_gradient
    return total, gradient


def refine(
    net: LatentCodecModel,
    y: Tensor,
    padded: np.ndarray,
    height: int,
    width: int,
    lmbda: float,
    steps: int,
    mode: str = RGB,
    tile: int = tiling.TILE,
) -> Tensor:
    """The latent after `steps` Adam steps from `y` on the rate–distortion loss J, rounding relaxed.

    `y` is the gained latent of the edge-padded uint8 image `padded` (H, W, 3),
    whose top-left `height`×`width` pixels are the image; `lmbda` is the rate
    parameter the file is coded with (the λ of J); `mode` the colour mode it decodes to;
    `tile` the synthesis tile size (pixels) of the distortion term.
    """
    check(steps, padded.shape[0], padded.shape[1])
    image = torch.from_numpy(padded[:height, :width].copy()).to(y.device).permute(2, 0, 1)[None].float() / 255
    latent = y.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=learning_rate(lmbda))
    generator = torch.Generator(y.device).manual_seed(SEED)
    with torch.enable_grad():
        for step in range(steps):
            progress = step / steps
            tau = temperature(step / max(steps - 1, 1))
            y_hat, likelihoods = net.quantize_latent(latent, gumbel_rounding(tau, generator))
            synthesis_input = net.ungained(y_hat, lmbda)
            bits = sum(-torch.log2(values).sum() for values in likelihoods.values())
            _, synthesis_gradient = distortion_gradient(net.g_s, synthesis_input, image, mode, tile)
            optimizer.param_groups[0]["lr"] = learning_rate(lmbda) * min(1.0, (1 - progress) / 0.9)
            (latent.grad,) = torch.autograd.grad(
                [bits / (height * width), synthesis_input],
                [latent],
                [None, lmbda * 255**2 * synthesis_gradient],
            )
            optimizer.step()
    return latent.detach().to(y.dtype)
