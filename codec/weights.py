"""Shipped weights: safetensors files with JSON model cards, and their registry.

Each rate point of a model is two files in the weights folder
(``assets/models`` by default, or ``$AECODEC_WEIGHTS``):

* ``<stem>.safetensors``: the state dict, CDF tables included;
* ``<stem>.json``: the model card: ``model`` (architecture name), ``N``,
  ``M``, ``lambda``, ``weights`` (file name), ``sha256`` of the weights file,
  ``exported_by`` (the aecodec version; files exported by 0.5.3 or later keep
  h_s and the entropy-parameter networks only as integer copies, which older
  versions cannot load), and how it was trained and how it measures on Kodak.

A variable-rate model (gain units, codec/layers.py) is one rate point that
covers a range: its card has ``lambdas`` (the λ it was trained for, in
increasing order) and ``lambda`` null, and it is stored as
``<model>-variable-rate.safetensors``.

A rate point is named by (model, lambda). Loading checks the file's SHA-256
against the card; the first 8 bytes of that digest are the fingerprint that
every .aec file records, so a file never decodes with other weights.

Weights replaced by better-trained ones move to ``superseded/<release>/``, the
last release that shipped them: the encoder never uses them, but files made with
them keep decoding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from codec.errors import WeightsError
from codec.integer import IntegerSynthesis
from codec.models import ARCHITECTURES, LatentCodecModel

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
SUPERSEDED = "superseded"


def weights_dir() -> Path:
    return Path(os.environ.get("AECODEC_WEIGHTS", DEFAULT_WEIGHTS_DIR))


@dataclass(frozen=True)
class RatePoint:
    """One shipped set of weights: a model trained for one λ, or for a range of λ (variable rate)."""

    model: str
    lmbda: float  # the λ of a fixed-rate point; the lowest λ of a variable-rate one
    card: dict
    card_path: Path

    @property
    def lambdas(self) -> tuple[float, ...]:
        """The λ a variable-rate model was trained for; empty for a fixed-rate point."""
        return tuple(float(v) for v in self.card.get("lambdas") or ())

    @property
    def variable_rate(self) -> bool:
        return bool(self.lambdas)

    def rate_for(self, lmbda: float) -> float:
        """The rate parameter these weights code with when λ is asked for."""
        if not self.variable_rate:
            return self.lmbda
        return min(max(lmbda, self.lambdas[0]), self.lambdas[-1])

    def accepts(self, rate: float) -> bool:
        """Whether a file's rate parameter is one these weights can have made (float32 as stored)."""
        if not self.variable_rate:
            return bool(np.float32(self.lmbda) == np.float32(rate))
        return bool(np.float32(self.lambdas[0]) <= np.float32(rate) <= np.float32(self.lambdas[-1]))

    @property
    def weights_path(self) -> Path:
        return self.card_path.parent / self.card["weights"]

    @property
    def fingerprint(self) -> bytes:
        return bytes.fromhex(self.card["sha256"])[:8]


def rate_points(model: str | None = None, directory: Path | None = None) -> list[RatePoint]:
    """Every rate point in the weights folder (of one model), by model then λ."""
    found = _scan(str(directory or weights_dir()))
    return [p for p in found if model is None or p.model == model]


def decodable_points(model: str) -> list[RatePoint]:
    """The rate points a file of `model` may have been made with: the current ones, then the
    superseded ones (``superseded/<release>/`` in the weights folder)."""
    releases = sorted(path for path in (weights_dir() / SUPERSEDED).glob("*") if path.is_dir())
    return rate_points(model) + [point for release in releases for point in rate_points(model, release)]


@functools.lru_cache(maxsize=8)
def _scan(directory: str) -> tuple[RatePoint, ...]:
    points = []
    for card_path in sorted(Path(directory).glob("*.json")):
        try:
            card = json.loads(card_path.read_text())
            if card.get("model") in ARCHITECTURES:
                lmbda = float(card["lambda"]) if card.get("lambda") is not None else float(min(card["lambdas"]))
                points.append(RatePoint(card["model"], lmbda, card, card_path))
                _ = (card["N"], card["M"], card["weights"], bytes.fromhex(card["sha256"]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise WeightsError(f"{card_path}: invalid model card ({type(error).__name__}: {error})") from None
    return tuple(sorted(points, key=lambda p: (p.model, p.lmbda)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _load_cached(
    model: str, N: int, M: int, lambdas: tuple[float, ...], path: Path, sha256: str, device: str
) -> LatentCodecModel:
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing")
    if sha256_of(path) != sha256:
        raise WeightsError(f"weights file {path} does not match the SHA-256 in its model card")
    net = ARCHITECTURES[model](N, M, lambdas)
    try:
        net.load_weights(load_file(str(path)))
    except RuntimeError as error:  # load_weights's one-line account of missing, unexpected or misshapen tensors
        raise WeightsError(f"weights file {path} does not fit {model} N={N} M={M}: {error}") from None
    if not net.integer_networks_ready():
        raise WeightsError(f"weights file {path} lacks the integer networks {model} codes with (re-export it)")
    return net.to(device).eval()


def load(point: RatePoint, device: str = "cpu") -> LatentCodecModel:
    """The model of a rate point, its weights file checked against the card's SHA-256, in eval mode."""
    card = point.card
    return _load_cached(point.model, card["N"], card["M"], point.lambdas, point.weights_path, card["sha256"], device)


def export(model: LatentCodecModel, lmbda: float | None, directory: Path, card: dict) -> Path:
    """Build the CDF tables, write ``<model>-<λ>.safetensors`` (or ``<model>-variable-rate``) and its
    card; returns the card path. `lmbda` is None for a variable-rate model."""
    model = model.cpu().eval()
    model.update_tables()
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{model.name}-variable-rate" if model.lambdas else f"{model.name}-lambda{lmbda:g}"
    weights_path = directory / f"{stem}.safetensors"
    state = _compact(model, {k: v.detach().contiguous() for k, v in model.state_dict().items()})
    # One metadata entry: safetensors writes several in a random order, and exports should be byte-reproducible.
    save_file(state, str(weights_path), metadata={"aecodec": json.dumps({"model": model.name, "lambda": lmbda})})
    from codec import __version__  # here, not at import: codec/__init__ imports this module

    full_card = {
        "model": model.name,
        "N": model.N,
        "M": model.M,
        "lambda": None if model.lambdas else lmbda,
        **({"lambdas": list(model.lambdas)} if model.lambdas else {}),
        "weights": weights_path.name,
        "sha256": sha256_of(weights_path),
        "exported_by": f"aecodec {__version__}",  # 0.5.3 on: h_s only as its integer copy, which older ones cannot load
        **card,
    }
    card_path = directory / f"{stem}.json"
    card_path.write_text(json.dumps(full_card, indent=2) + "\n")
    _scan.cache_clear()
    _load_cached.cache_clear()
    return card_path


def _compact(model: LatentCodecModel, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict in smaller storage that codes the same: integer-network tensors in the
    narrowest integer type that holds them (loading widens them back to int64), and no float
    weights for the networks that code only through their integer copy (h_s, the entropy
    parameters): loading derives those from the integer copy (codec.integer.with_float_copies)
    for training and for refinement's estimate of the rate (codec/refine.py). Before 0.5.3
    they were stored as float16, about a third of a channel-wise file."""
    integer = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, IntegerSynthesis) and m.ready)
    coded_as_integers = tuple(name.replace("_integer", "", 1) for name in integer)
    compact = {}
    for key, value in state.items():
        if key.startswith(integer):
            compact[key] = value.to(_narrowest_integer_type(value))
        elif not key.startswith(coded_as_integers):
            compact[key] = value
    return compact


def _narrowest_integer_type(value: Tensor) -> torch.dtype:
    if not value.numel():
        return value.dtype
    low, high = int(value.min()), int(value.max())
    for dtype in (torch.int8, torch.int16, torch.int32):
        if torch.iinfo(dtype).min <= low and high <= torch.iinfo(dtype).max:
            return dtype
    return value.dtype


def update_card(card_path: Path, **fields) -> None:
    """Add or replace fields of a model card (e.g. measured Kodak results)."""
    card = json.loads(card_path.read_text())
    card.update(fields)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    _scan.cache_clear()


__all__ = ["RatePoint", "WeightsError", "export", "load", "rate_points", "update_card", "weights_dir"]
