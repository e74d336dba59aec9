"""What every aecodec model shares: training outputs, stored CDF tables, coding API.

A model is an autoencoder whose quantized latents are entropy coded. Each model
defines, symmetrically (as in CompressAI):

* ``forward(x)`` for training: the reconstruction and the likelihood of every
  latent under the entropy model (uniform noise stands in for rounding). It is
  ``forward_latent(gained(g_a(x)))``, which is ``quantize_latent`` (ŷ and
  the likelihoods) followed by g_s; ``quantize_latent(y, rounding=...)``
  quantizes where coding does (around the same medians and means) with a
  differentiable stand-in for rounding, so that an encoder can optimize y
  itself (codec/refine.py);
* ``compress_latent(y, coder)``: quantization and entropy coding of the
  analysis transform's output y, one byte string per latent stream, in
  ``stream_names`` order (the order the decoder needs them);
* ``decompress_latent(streams, height, width, coder)``: the quantized y_hat.

``g_a`` and ``g_s`` are the analysis and synthesis transforms; the codec runs
them tile by tile (codec/tiling.py). ``compress(x)`` and ``decompress(...)``
chain them with the latent coding for a whole image in one piece.

A model may be variable-rate: then it has gain units (codec/layers.py) and
every path takes the rate parameter λ; ``gained``/``ungained`` scale y and ŷ
around quantization, and are identities for fixed-rate models.

``height`` and ``width`` are those of the padded input, a multiple of
``PAD_MULTIPLE``. The integer CDF tables are built once by ``update_tables()``
at export and then live in the state dict beside the weights, so loading never
recomputes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from torch import Tensor, nn

from codec.entropy import CdfTables
from codec.integer import IntegerSynthesis, with_float_copies
from codec.layers import GainUnits

PAD_MULTIPLE = 64

Rounding = Callable[[Tensor], Tensor]
"""How ``forward_latent`` quantizes instead of adding training noise: a function of the latent
minus its coding offset (median or mean) that returns integers, or a relaxation of them, with
gradients, e.g. compressai's ``quantize_ste`` (rounding, straight-through gradients)."""
_TABLE_BUFFERS = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table")


class LatentCodecModel(nn.Module):
    """Base class: an autoencoder with entropy-coded latents."""

    name: ClassVar[str]
    stream_names: ClassVar[tuple[str, ...]]
    g_a: nn.Module
    g_s: nn.Module

    def __init__(self, N: int, M: int, lambdas: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.N = N
        self.M = M
        self.gain_units = GainUnits(M, tuple(lambdas)) if lambdas else None
        self._tables: dict[str, CdfTables] = {}

    @property
    def lambdas(self) -> tuple[float, ...]:
        """The λ a variable-rate model was trained for (empty for a fixed-rate model)."""
        return self.gain_units.lambdas if self.gain_units is not None else ()

    def gained(self, y: Tensor, lmbda: float | None) -> Tensor:
        """y scaled for rate parameter λ before quantization (identity for fixed-rate models)."""
        if self.gain_units is None:
            return y
        if lmbda is None:
            raise ValueError("a variable-rate model needs a rate parameter λ")
        return y * self.gain_units.gain(lmbda).to(y)

    def ungained(self, y_hat: Tensor, lmbda: float | None) -> Tensor:
        """ŷ scaled back for synthesis (identity for fixed-rate models)."""
        if self.gain_units is None:
            return y_hat
        if lmbda is None:
            raise ValueError("a variable-rate model needs a rate parameter λ")
        return y_hat * self.gain_units.inverse_gain(lmbda).to(y_hat)

    def forward(self, x: Tensor, lmbda: float | None = None) -> dict:
        """Training outputs of a batch of images: ``x_hat`` and the ``likelihoods`` of each latent."""
        return self.forward_latent(self.gained(self.g_a(x), lmbda), lmbda)

    def forward_latent(self, y: Tensor, lmbda: float | None = None, rounding: Rounding | None = None) -> dict:
        """``forward`` from the gained latent y on. `rounding`: quantize with it around the offsets
        coding rounds around (medians, means), instead of the entropy models' own quantization
        (uniform noise in training mode)."""
        y_hat, likelihoods = self.quantize_latent(y, rounding)
        return {"x_hat": self.g_s(self.ungained(y_hat, lmbda)), "likelihoods": likelihoods}

    def quantize_latent(self, y: Tensor, rounding: Rounding | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``forward_latent`` without the synthesis: the quantized gained latent ŷ that g_s reads
        (after ``ungained``) and the likelihoods of every latent, by stream name."""
        raise NotImplementedError

    def entropy_models(self) -> dict[str, EntropyModel]:
        """The entropy model of each stream, by stream name."""
        raise NotImplementedError

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """(channels, rows, columns) of each stream's latent for a padded input."""
        raise NotImplementedError

    def compress_latent(self, y: Tensor, coder: str = "range") -> list[bytes]:
        raise NotImplementedError

    def decompress_latent(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", terminated: bool = True
    ) -> Tensor:
        """y_hat from the streams; `terminated`: streams end with entropy.END_MARKER (format ≥ 2)."""
        raise NotImplementedError

    @torch.no_grad()
    def compress(self, x: Tensor, coder: str = "range", lmbda: float | None = None) -> list[bytes]:
        """The streams of a whole (1, 3, H, W) image in [0, 1], sides multiples of PAD_MULTIPLE."""
        return self.compress_latent(self.gained(self.g_a(x), lmbda), coder)

    @torch.no_grad()
    def decompress(
        self, streams: list[bytes], height: int, width: int, coder: str = "range", lmbda: float | None = None
    ) -> Tensor:
        """The (1, 3, height, width) float reconstruction of a whole image."""
        return self.g_s(self.ungained(self.decompress_latent(streams, height, width, coder), lmbda))

    def aux_loss(self) -> Tensor:
        """Quantile loss of the factorized entropy bottlenecks (Ballé et al. 2018)."""
        losses = [m.loss() for m in self.entropy_models().values() if hasattr(m, "loss")]
        return torch.stack(losses).sum()

    @torch.no_grad()
    def update_tables(self) -> None:
        """Build the integer CDF tables from the current weights (export time only)."""
        for model in self.entropy_models().values():
            if hasattr(model, "scale_table") and model.scale_table.numel():
                model.update()
            else:
                model.update(force=True)
        self._tables.clear()

    def tables(self, stream: str) -> CdfTables:
        """The stored CDF tables of one stream."""
        if stream not in self._tables:
            model = self.entropy_models()[stream]
            if model._quantized_cdf.numel() == 0:
                raise RuntimeError("model has no CDF tables: export it with update_tables()")
            self._tables[stream] = CdfTables(
                cdf=model._quantized_cdf.cpu().numpy(),
                length=model._cdf_length.cpu().numpy(),
                offset=model._offset.cpu().numpy(),
                precision=model.entropy_coder_precision,
            )
        return self._tables[stream]

    def integer_networks_ready(self) -> bool:
        """Whether the integer networks that coding needs are present (models without any: True)."""
        return True

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load a state dict that includes the CDF tables and integer networks (whose sizes vary).

        Integer networks (codec/integer.py) may be absent: weights exported
        before they existed load without them and code with float networks.
        A float network present only as its integer copy (exports from 0.5.3 on)
        is derived from that copy.
        """
        state = with_float_copies(state)
        for key, value in state.items():
            module_name, _, buffer_name = key.rpartition(".")
            try:
                module = self.get_submodule(module_name)
            except AttributeError:  # not a module of this model: reported below as unexpected
                continue
            if isinstance(module, IntegerSynthesis):  # stored as int32 where the values fit
                module.register_buffer(buffer_name, torch.empty_like(value, dtype=torch.int64))
            elif buffer_name in _TABLE_BUFFERS:
                module.register_buffer(buffer_name, torch.empty_like(value))
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shape mismatches: a heading, then one line per tensor
            details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
            more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
            raise RuntimeError(f"weights do not fit the model: {details[0]}{more}") from None
        integer_prefixes = tuple(f"{name}." for name, m in self.named_modules() if isinstance(m, IntegerSynthesis))
        missing = [key for key in missing if not key.startswith(integer_prefixes)]
        if missing or unexpected:
            raise RuntimeError(
                f"weights do not fit the model: {_some('missing', missing)}, {_some('unexpected', unexpected)}"
            )
        self._tables.clear()


def _some(what: str, keys: list[str], shown: int = 3) -> str:
    """'3 missing (a, b, c)', or '40 missing (a, b, c, …)': a one-line account of a key list."""
    more = ", …" if len(keys) > shown else ""
    return f"{len(keys)} {what}" + (f" ({', '.join(keys[:shown])}{more})" if keys else "")


def full_precision(x: Tensor) -> torch.autocast:
    """A region where autocast is off: entropy models compute likelihoods in float32.

    Under bf16 autocast (training on a GPU) the transforms run in bf16, but the
    likelihoods, whose logarithms are the rate, need float32.
    """
    return torch.autocast(x.device.type, enabled=False)


def factorized_likelihood(
    bottleneck: EntropyBottleneck, values: Tensor, medians: Tensor, rounding: Rounding | None
) -> tuple[Tensor, Tensor]:
    """(quantized values, likelihoods) of a (B, C, H, W) latent under a factorized entropy model.

    Without `rounding`, the bottleneck's own forward (noise in training mode);
    with it, `rounding` applied around the medians, where coding rounds.
    """
    with full_precision(values):
        if rounding is None:
            return bottleneck(values.float())
        quantized = rounding(values.float() - medians) + medians
        by_channel = quantized.transpose(0, 1)  # the bottleneck's (C, 1, −1) layout
        likelihood, _, _ = bottleneck._likelihood(by_channel.reshape(by_channel.shape[0], 1, -1))
        if bottleneck.use_likelihood_bound:
            likelihood = bottleneck.likelihood_lower_bound(likelihood)
        return quantized, likelihood.reshape(by_channel.shape).transpose(0, 1)


def gaussian_likelihood(
    conditional: GaussianConditional, values: Tensor, scales: Tensor, means: Tensor | None, rounding: Rounding | None
) -> tuple[Tensor, Tensor]:
    """(quantized values, likelihoods) of a latent under a conditional Gaussian, as above."""
    with full_precision(values):
        values, scales = values.float(), scales.float()
        means = None if means is None else means.float()
        if rounding is None:
            return conditional(values, scales, means=means)
        quantized = rounding(values) if means is None else rounding(values - means) + means
        likelihood = conditional._likelihood(quantized, scales, means)
        if conditional.use_likelihood_bound:
            likelihood = conditional.likelihood_lower_bound(likelihood)
        return quantized, likelihood


def channel_indexes(channels: int, rows: int, columns: int) -> Tensor:
    """CDF index of every element of a (1, C, H, W) latent coded with one table per channel."""
    return torch.arange(channels, dtype=torch.int32).view(1, -1, 1, 1).expand(1, channels, rows, columns)
