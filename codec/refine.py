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

* J is evaluated where the coder will be: ŷ and ẑ are rounded as
  ``compress_latent`` rounds them, around the same medians and around the
  means of the float entropy-parameter networks (coding uses their
  integer-exact twins, which agree to fixed-point precision), with
  straight-through gradients (``forward_latent(straight_through=True)``). Yang
  et al. find a stochastic annealed relaxation better still, at the price of a
  schedule with more knobs; straight-through rounding is deterministic and
  needs none.
* Only y is optimized; z = h_a(y) follows it, because ``compress_latent``
  derives z from y (Yang et al. also refine z on its own).
* Adam, its learning rate constant for the first tenth of the steps and then
  falling linearly to zero. The rate grows with λ as 0.02·√(λ/0.18): at low λ
  most of y rounds to the mean and large steps overshoot, at high λ the
  amortized latent is furthest from the optimum. This rule was chosen on
  photos of the training sets, not on Kodak (benchmarks/refine.py measures it).
* The straight-through gradient is not the gradient of J, so J can rise along
  the way; the iterate with the lowest estimated J is kept (step 0 is g_a's own
  latent). The estimate is not the file: the coded rate differs from it by
  about 1 %, and a value on a rounding boundary can round the other way with
  the integer means. So the encoder (codec/api.py) codes both the plain and the
  refined latent and keeps the file whose real J is lower.
* Distortion counts only the image's own pixels, not the edge padding.

The whole image is optimized at once, so memory grows with its size
(``MAX_PIXELS`` bounds it); each step costs about one synthesis transform
forward and backward.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from codec.errors import UnsupportedImageError
from codec.models import LatentCodecModel

MAX_PIXELS = 2048 * 2048
MAX_STEPS = 10_000


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


def refine(
    net: LatentCodecModel, y: Tensor, padded: np.ndarray, height: int, width: int, lmbda: float, steps: int
) -> Tensor:
    """The latent with the lowest rate–distortion loss J found in `steps` Adam steps from `y`.

    `y` is the gained latent of the edge-padded uint8 image `padded` (H, W, 3),
    whose top-left `height`×`width` pixels are the image; `lmbda` is the rate
    parameter the file is coded with (the λ of J).
    """
    check(steps, padded.shape[0], padded.shape[1])
    image = torch.from_numpy(padded[:height, :width].copy()).to(y.device).permute(2, 0, 1)[None].float() / 255
    latent = y.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=learning_rate(lmbda))
    best, best_loss = y.detach(), math.inf
    with torch.enable_grad():
        for step in range(steps + 1):
            out = net.forward_latent(latent, lmbda, straight_through=True)
            x_hat = out["x_hat"][..., :height, :width]
            bits = sum(-torch.log2(likelihoods).sum() for likelihoods in out["likelihoods"].values())
            loss = lmbda * 255**2 * torch.mean((x_hat - image) ** 2) + bits / (height * width)
            if loss.item() < best_loss:
                best, best_loss = latent.detach().clone(), loss.item()
            if step == steps:
                break
            progress = step / steps
            optimizer.param_groups[0]["lr"] = learning_rate(lmbda) * min(1.0, (1 - progress) / 0.9)
            (latent.grad,) = torch.autograd.grad(loss, [latent])
            optimizer.step()
    return best.to(y.dtype)
