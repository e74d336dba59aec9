"""Export a training checkpoint as a shipped model: CDF tables and integer networks built,
weights and model card written, exactly as ``python -m train --export_dir`` does at a run's end.

    python -m train.export CKPT DIR [--last]

A run that kept a weight average (``--average_decay``) exports the average, as training
does; ``--last`` exports the last step's weights instead, e.g. to measure what averaging gave.

For checkpoints trained elsewhere, e.g. on a lent GPU and brought back slimmed by
``python -m train.transfer slim`` (model weights and metadata only). The card's
``training`` section comes from the checkpoint's own configuration and progress,
so it names the hardware that trained it, not this machine (checkpoints from before the
hardware was recorded say so).
"""

from __future__ import annotations

import sys
from pathlib import Path

from codec import weights
from codec.models import ARCHITECTURES
from train import checkpoint
from train.train import comma_floats, training_card


def export_checkpoint(path: Path, directory: Path, last: bool = False) -> Path:
    """Write the exported weights and card of checkpoint `path` into `directory`: its weight
    average if it kept one and not `last`, else its last step's weights; returns the card path."""
    meta, tensors = checkpoint.read(path)
    config = meta["config"]
    levels = comma_floats(config.get("lambdas", ""))
    model = ARCHITECTURES[config["arch"]](config["N"], config["M"], levels)
    averaged = not last and bool(checkpoint.average_state(tensors))
    model.load_weights(checkpoint.model_state(tensors, averaged))
    card = training_card(config, meta["step"], meta["extra"], averaged)
    return weights.export(model, None if levels else config["lmbda"], directory, card)


def main(argv: list[str]) -> None:
    last = "--last" in argv
    argv = [a for a in argv if a != "--last"]
    if len(argv) != 2:
        raise SystemExit("usage: python -m train.export CKPT DIR [--last]")
    try:
        print(export_checkpoint(Path(argv[0]), Path(argv[1]), last))
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        raise SystemExit(f"train.export: {argv[0]}: {error}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
