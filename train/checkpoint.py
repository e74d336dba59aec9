"""Training checkpoints as safetensors plus JSON metadata (no pickle).

A checkpoint holds the model, both optimizers' state tensors, the data RNG
state, the weight average if the run keeps one (train/average.py) and, in its
metadata, the step, the configuration and the optimizers' hyper-parameters, so
that training resumes exactly where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from train.average import WeightAverage

MODEL = "model."  # prefix of the model's tensors; the others are optimizer state and RNG states
AVERAGE = "average."  # prefix of the weight average's tensors (parameters only)


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            name = f"{prefix}.{param_id}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = value
    for name, value in meta["scalars"].items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    groups = meta["param_groups"]
    if len(groups) != len(optimizer.param_groups):  # saved before gain units had a group of their own
        groups = _regrouped(groups, optimizer)
    scales = [{k: v for k, v in group.items() if k == "lr_scale"} for group in optimizer.param_groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    for group, scale in zip(optimizer.param_groups, scales):  # this invocation's, as its other flags
        group.update(scale)


def _regrouped(saved: list[dict], optimizer: torch.optim.Optimizer) -> list[dict]:
    """Saved parameter groups split as `optimizer`'s are, keeping the parameters' order (so their
    state's indices) and the saved settings; refused if the parameter counts differ."""
    indices = [i for group in saved for i in group["params"]]
    if len(indices) != sum(len(group["params"]) for group in optimizer.param_groups):
        raise ValueError("the checkpoint's optimizer holds another number of parameters than this model")
    settings = {k: v for k, v in saved[0].items() if k != "params"}
    regrouped, start = [], 0
    for group in optimizer.param_groups:
        count = len(group["params"])
        regrouped.append({**settings, "params": indices[start : start + count]})
        start += count
    return regrouped


def save(
    path: Path,
    model,
    optimizer,
    aux_optimizer,
    generator: torch.Generator,
    step: int,
    config: dict,
    extra: dict,
    average: WeightAverage | None = None,
) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    tensors = {f"{MODEL}{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if average is not None:
        tensors |= {f"{AVERAGE}{k}": v.contiguous() for k, v in average.tensors.items()}
    opt_tensors, opt_meta = _optimizer_tensors("optimizer", optimizer)
    aux_tensors, aux_meta = _optimizer_tensors("aux_optimizer", aux_optimizer)
    tensors.update(opt_tensors)
    tensors.update(aux_tensors)
    tensors["rng.data"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "config": config, "extra": extra, "optimizer": opt_meta, "aux_optimizer": aux_meta}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"checkpoint": json.dumps(meta)})
    os.replace(tmp, path)


def read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A checkpoint's metadata and tensors (a slimmed one, see train.transfer, holds model tensors only)."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
    if "checkpoint" not in metadata:
        raise ValueError("not a training checkpoint (no checkpoint metadata)")
    return json.loads(metadata["checkpoint"]), load_file(str(path))


def model_state(tensors: dict[str, torch.Tensor], averaged: bool = False) -> dict[str, torch.Tensor]:
    """The model's state dict among a checkpoint's tensors: the last step's weights or, with
    `averaged` and if the run kept one, their average."""
    state = {k.removeprefix(MODEL): v for k, v in tensors.items() if k.startswith(MODEL)}
    if averaged:
        state |= average_state(tensors)
    return state


def average_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weight average's tensors among a checkpoint's (empty if the run kept none)."""
    return {k.removeprefix(AVERAGE): v for k, v in tensors.items() if k.startswith(AVERAGE)}


def load(
    path: Path, model, optimizer, aux_optimizer, generator: torch.Generator, average: WeightAverage | None = None
) -> tuple[int, dict, dict]:
    """Restore a checkpoint in place; returns (step, config, extra). A run that starts keeping a
    weight average on resuming a checkpoint without one starts it from the checkpoint's weights."""
    meta, tensors = read(path)
    model.load_weights(model_state(tensors))
    if average is not None:
        average.load(average_state(tensors) or {k: p.detach() for k, p in model.named_parameters()})
    _load_optimizer("optimizer", optimizer, tensors, meta["optimizer"])
    _load_optimizer("aux_optimizer", aux_optimizer, tensors, meta["aux_optimizer"])
    generator.set_state(tensors["rng.data"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta["step"], meta["config"], meta["extra"]
