"""Rate–distortion training of an aecodec model, configuration in plain sight.

    python -m train --arch=bmshj2018-hyperprior --lmbda=0.0067 --steps=20000

Every field of `Config` can be overridden as ``--name=value``. The loss is
λ·255²·MSE + bpp (Ballé et al. 2018), plus the entropy bottleneck's quantile
loss on its own optimizer. A checkpoint is written every few minutes to
``out_dir/ckpt.safetensors`` and training resumes from it exactly; at the end
the model is exported to ``export_dir`` with its CDF tables and model card.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from codec import weights
from codec.models import ARCHITECTURES
from train import checkpoint
from train.data import ImageFolder


def default_train_data() -> str:
    return os.environ.get("AECODEC_TRAIN", str(Path(__file__).resolve().parents[1].parent / "shared/datasets/train"))


@dataclass
class Config:
    arch: str = "bmshj2018-hyperprior"
    N: int = 128
    M: int = 192
    lmbda: float = 0.0067  # loss = lmbda * 255² * MSE + bpp
    data: str = dataclasses.field(default_factory=default_train_data)
    crop: int = 256
    batch: int = 16
    steps: int = 100_000
    max_minutes: float = 0.0  # stop (checkpoint and export) after this long; 0 = no limit
    lr: float = 1e-4
    lr_final: float = 1e-5  # cosine decay to this over `steps`, after warm-up
    warmup: int = 500
    aux_lr: float = 1e-3
    clip: float = 1.0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    seed: int = 0
    out_dir: str = "runs/default"
    checkpoint_minutes: float = 5.0
    log_every: int = 50
    init: str = ""  # start from these weights (e.g. a shipped model, to fine-tune for another λ)
    export_dir: str = ""  # export here at the end; empty = don't export


def describe_hardware(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} thread(s)"


def describe_init(path: str) -> dict | None:
    """What a run started from: the weights file, and that model's own training, from its card."""
    if not path:
        return None
    card_path = Path(path).with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    training = card.get("training", {})
    return {
        "weights": Path(path).name,
        "sha256": card.get("sha256"),
        "lambda": card.get("lambda"),
        "steps": training.get("total_steps", training.get("steps")),
        "hours": training.get("total_hours", training.get("hours")),
    }


def parse_overrides(config: Config, argv: list[str]) -> Config:
    """Apply ``--name=value`` arguments, each cast to the field's type."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    for arg in argv:
        name, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or name not in fields:
            raise SystemExit(f"train: expected --name=value with name in {sorted(fields)}, got {arg!r}")
        kind = type(getattr(config, name))
        setattr(config, name, kind(value) if kind is not bool else value.lower() in ("1", "true", "yes"))
    return config


def learning_rate(config: Config, step: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1 + math.cos(math.pi * progress))


def rate_distortion(model, x: torch.Tensor, lmbda: float) -> dict[str, torch.Tensor]:
    out = model(x)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(lik).sum() for lik in out["likelihoods"].values()) / (-math.log(2) * num_pixels)
    mse = torch.mean((out["x_hat"] - x) ** 2)
    return {"loss": lmbda * 255**2 * mse + bpp, "bpp": bpp, "mse": mse}


def main(argv: list[str]) -> None:
    config = parse_overrides(Config(), argv)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "ckpt.safetensors"

    model = ARCHITECTURES[config.arch](config.N, config.M).to(config.device)
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=config.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=config.aux_lr)
    dataset = ImageFolder([Path(p) for p in config.data.split(",")], config.crop, config.seed)
    print(f"train: {len(dataset)} images ({dataset.skipped} smaller than {config.crop}² skipped)", file=sys.stderr)

    step, extra = 0, {"seconds": 0.0, "images_seen": 0, "init": describe_init(config.init)}
    if ckpt_path.exists():
        step, _, extra = checkpoint.load(ckpt_path, model, optimizer, aux_optimizer, dataset.generator)
        print(f"train: resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif config.init:
        from safetensors.torch import load_file

        model.load_weights(load_file(config.init))
    model.to(config.device).train()

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as log_file:
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["step", "loss", "bpp", "psnr", "aux", "lr", "images_per_s"])
        started = last_ckpt = time.time()
        seconds_before = extra["seconds"]
        bar = tqdm(total=config.steps, initial=step, dynamic_ncols=True, file=sys.stderr)
        while step < config.steps:
            if config.max_minutes and time.time() - started > 60 * config.max_minutes:
                break
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = dataset.batch(config.batch).to(config.device)
            terms = rate_distortion(model, x, config.lmbda)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(main_params, config.clip)
            optimizer.step()
            aux = model.aux_loss()
            aux_optimizer.zero_grad(set_to_none=True)
            aux.backward()
            aux_optimizer.step()
            step += 1
            extra["images_seen"] += config.batch
            bar.update()
            if step % config.log_every == 0:
                elapsed = time.time() - started
                psnr = -10 * math.log10(max(terms["mse"].item(), 1e-12))
                speed = (step - bar.initial) * config.batch / max(elapsed, 1e-9)
                bar.set_postfix(
                    loss=f"{terms['loss'].item():.3f}",
                    bpp=f"{terms['bpp'].item():.3f}",
                    psnr=f"{psnr:.2f}",
                    img_s=f"{speed:.1f}",
                )
                log.writerow([step, terms["loss"].item(), terms["bpp"].item(), psnr, aux.item(), lr, speed])
                log_file.flush()
            if time.time() - last_ckpt > 60 * config.checkpoint_minutes:
                extra["seconds"] = seconds_before + time.time() - started
                checkpoint.save(
                    ckpt_path,
                    model,
                    optimizer,
                    aux_optimizer,
                    dataset.generator,
                    step,
                    dataclasses.asdict(config),
                    extra,
                )
                last_ckpt = time.time()
        bar.close()
    extra["seconds"] = seconds_before + time.time() - started
    checkpoint.save(
        ckpt_path, model, optimizer, aux_optimizer, dataset.generator, step, dataclasses.asdict(config), extra
    )

    if config.export_dir:
        init = extra.get("init")
        init = describe_init(init) if isinstance(init, str) else init  # older checkpoints kept the path
        card = {
            "training": {
                "data": config.data,
                "steps": step,
                "total_steps": step + ((init or {}).get("steps") or 0),
                "total_hours": round(extra["seconds"] / 3600 + ((init or {}).get("hours") or 0), 3),
                "images_seen": extra["images_seen"],
                "crop": config.crop,
                "batch": config.batch,
                "hardware": describe_hardware(config.device),
                "hours": round(extra["seconds"] / 3600, 3),
                "initialized_from": init,
                "config": dataclasses.asdict(config),
            }
        }
        card_path = weights.export(model, config.lmbda, Path(config.export_dir), card)
        print(f"train: exported {card_path}", file=sys.stderr)
