"""Copies of weights and checkpoints small enough to travel to and from a lent GPU machine.

    python -m train.transfer half WEIGHTS... --out DIR   # shipped weights → starting points to carry
    python -m train.transfer slim CKPT... --out DIR      # runs' checkpoints → weights to bring back

A device run receives 64 MiB in all (checkout plus carried folders) and returns at most
64 MB, so neither the shipped weights (about 100 MB) nor full checkpoints (weights plus
two Adam moments, 3× the weights) travel as they are.

``half`` keeps a model's trainable parameters in float16 (relative rounding 2⁻¹¹, absolute
at most 3e-8 for the few tiny GDN entries below float16's normal range: far below what the
first fine-tuning steps change; loading widens them back to float32), keeps the
CDF tables and other buffers exact, drops the integer networks (rebuilt at export; a float
network that the weights file holds only as its integer copy is derived from it first), and
copies the model card, which names the original weights and their training.

``slim`` keeps a checkpoint's model tensors, its weight average if any, and metadata, and
drops the optimizer and RNG state, writing ``DIR/<run>.safetensors`` for
``<run>/ckpt.safetensors``. It is for ``python -m train.export``, which turns it into
shipped weights; training does not resume from it (export it and start a new run with
``--init``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from codec.integer import IntegerSynthesis, with_float_copies
from codec.models import ARCHITECTURES
from train import checkpoint


def half(weights_path: Path, out: Path) -> Path:
    """Write the float16 starting-point copy of `weights_path` (and its card) into `out`."""
    if out.resolve() == weights_path.parent.resolve():
        raise ValueError(f"{out} holds the weights themselves: choose another --out")
    card_path = weights_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    model = ARCHITECTURES[card["model"]](card["N"], card["M"], tuple(card.get("lambdas") or ()))
    parameters = {name for name, _ in model.named_parameters()}
    integer_networks = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, IntegerSynthesis))
    tensors = {
        key: value.half() if key in parameters else value
        for key, value in with_float_copies(load_file(str(weights_path))).items()
        if not key.startswith(integer_networks)
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / weights_path.name))
    shutil.copyfile(card_path, out / card_path.name)
    return out / weights_path.name


def slim(checkpoint_path: Path, out: Path) -> Path:
    """Write `checkpoint_path`'s model tensors (and weight average) and metadata, without optimizer state, to `out`."""
    meta, tensors = checkpoint.read(checkpoint_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = {k: v for k, v in tensors.items() if k.startswith((checkpoint.MODEL, checkpoint.AVERAGE))}
    save_file(model, str(out), metadata={"checkpoint": json.dumps(meta)})
    return out


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    if len(argv) < 4 or argv[0] not in ("half", "slim") or argv[-2] != "--out":
        raise SystemExit("usage: python -m train.transfer half WEIGHTS... --out DIR | slim CKPT... --out DIR")
    out = Path(argv[-1])
    for path in map(Path, argv[1:-2]):
        print(half(path, out) if argv[0] == "half" else slim(path, out / f"{path.parent.name}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1:])
