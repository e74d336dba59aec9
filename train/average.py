"""An exponential moving average of a model's weights, exported in place of the last step's.

Late in training each Adam step still moves the weights by about the learning rate in a
direction that is partly noise (one batch of 8–16 crops, one λ level of a variable-rate
model). Averaging the recent iterates cancels much of that noise while keeping the drift
(Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging"); the
exponential form weights step t−k by decay^k, so it follows the last ~1/(1 − decay) steps.

Only parameters are averaged. Buffers (λ levels, CDF tables, integer networks) are either
constant during training or rebuilt from the parameters at export, so the averaged model is
the live model's state with its parameters replaced.
"""

from __future__ import annotations

import torch


class WeightAverage:
    """``average ← decay · average + (1 − decay) · weights`` after every optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.tensors = {name: p.detach().clone() for name, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        names, parameters = zip(*model.named_parameters())
        # one fused call rather than a kernel per tensor (GPU steps of small models are launch-bound)
        torch._foreach_lerp_([self.tensors[n] for n in names], [p.detach() for p in parameters], 1.0 - self.decay)

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore saved averages (a resumed run); each must match its parameter's shape."""
        for name, value in tensors.items():
            if name not in self.tensors or self.tensors[name].shape != value.shape:
                raise ValueError(f"the checkpoint's weight average has no place for {name}")
            self.tensors[name].copy_(value)

    def state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s state with its parameters replaced by their averages."""
        return {**model.state_dict(), **self.tensors}
