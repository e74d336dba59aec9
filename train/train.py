"""Rate–distortion training of an aecodec model, configuration in plain sight.

    python -m train --arch=bmshj2018-hyperprior --lmbda=0.0067 --steps=20000

Every field of `Config` can be overridden as ``--name=value``. The loss is
λ·255²·MSE + bpp (Ballé et al. 2018), or λ·(1 − MS-SSIM) + bpp with
``--distortion=ms-ssim`` (CompressAI's λ for that loss runs from about 2.4 to
60), plus the entropy bottleneck's quantile loss on its own optimizer.

Tensors are channels_last on every device: oneDNN's CPU convolutions are faster
in that layout too (a step of the N=128 hyperprior, batch 8, one thread on an
AVX-512 Xeon: 3.26 s against 3.85 s; bf16 autocast there was slower, 4.1 s).
On CUDA the transforms run under bf16 autocast (likelihoods stay float32, see
codec/models/base.py), TF32 is allowed, and ``--compile=true`` compiles the four
transforms. The same code runs on the CPU.

A checkpoint is written every few minutes to ``out_dir/ckpt.safetensors`` and
training resumes from it exactly. Every ``val_every`` steps the model is
validated on Kodak with real coding (train/validate.py) into
``out_dir/val.csv``. At the end the model is exported to ``export_dir`` with
its CDF tables and model card.
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
from safetensors.torch import load_file
from tqdm import tqdm

from codec import weights
from codec.integer import with_float_copies
from codec.layers import GainUnits
from codec.models import ARCHITECTURES
from train import checkpoint, validate
from train.average import WeightAverage
from train.data import ImageFolder


def default_train_data() -> str:
    return os.environ.get("AECODEC_TRAIN", str(Path(__file__).resolve().parents[1].parent / "shared/datasets/train"))


def default_val_data() -> str:
    return os.environ.get("AECODEC_KODAK", str(Path(__file__).resolve().parents[1].parent / "shared/datasets/kodak"))


@dataclass
class Config:
    arch: str = "bmshj2018-hyperprior"
    N: int = 128
    M: int = 192
    lmbda: float = 0.0067  # loss = lmbda * 255² * MSE + bpp
    lambdas: str = ""  # comma-separated λ levels: a variable-rate model (gain units), one level sampled per step
    level_weights: str = ""  # comma-separated relative sampling frequency of each λ level; empty = uniform
    data: str = dataclasses.field(default_factory=default_train_data)
    crop: int = 256
    batch: int = 16
    steps: int = 100_000
    max_minutes: float = 0.0  # stop (checkpoint and export) after this long; 0 = no limit
    lr_by_time: bool = False  # decay over the rest of this invocation's max_minutes after warm-up, not over `steps`
    lr: float = 1e-4
    lr_final: float = 1e-5  # cosine decay to this over `steps` (or the time left, lr_by_time), after warm-up;
    # a resumed run takes this invocation's flags, not the checkpoint's, and past warm-up restarts at
    # the schedule's point for its step (with lr_by_time: at lr again, a warm restart)
    warmup: int = 500
    gain_lr_scale: float = 20.0  # gain units learn at this multiple of lr: a fine-tune's small lr barely moves them
    aux_lr: float = 1e-3
    clip: float = 1.0
    average_decay: float = 0.0  # keep an exponential moving average of the weights (train/average.py) with
    # this decay, e.g. 0.998, and export it instead of the last step's weights; 0 = off
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    seed: int = 0
    out_dir: str = "runs/default"
    checkpoint_minutes: float = 5.0
    log_every: int = 50
    init: str = ""  # start from these weights (e.g. a shipped model, to fine-tune for another λ)
    export_dir: str = ""  # export here at the end; empty = don't export
    distortion: str = "mse"  # "mse" or "ms-ssim" (needs crop ≥ 161)
    amp: str = "auto"  # "bf16" autocast for the transforms, "none", or "auto" = bf16 on CUDA only
    compile: bool = False  # torch.compile the transforms: ~15 % faster steps on the CPU too, after ~40 s
    val_every: int = 0  # validate on Kodak with real coding every this many steps; 0 = never
    val_data: str = dataclasses.field(default_factory=default_val_data)
    val_images: int = 24  # the first this many images of val_data


def comma_floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers (``--lambdas``, ``--level_weights``); empty for ""."""
    return tuple(float(v) for v in text.split(",")) if text else ()


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


def resampled_gains(trained: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """A variable-rate model's gain-unit tensors moved to `model`'s λ levels (identical if they match)."""
    levels = tuple(trained["gain_units.lambda_levels"].tolist())
    units = GainUnits(model.M, levels)
    units.load_state_dict({k.removeprefix("gain_units."): v for k, v in trained.items()})
    if levels != model.lambdas:
        units = units.resampled(model.lambdas)
    return {f"gain_units.{k}": v for k, v in units.state_dict().items()}


def initialize_from(model, path: str) -> list[str] | None:
    """Load starting weights. A file of the same architecture loads whole (a fixed-rate one into a
    variable-rate model gets fresh gain units centred on its card's λ, where they leave its latent
    unchanged; a variable-rate one trained for other λ levels
    has its gains resampled to this model's levels, which widens its rate range). From another
    architecture, as named by its card, every top-level module whose tensors all match is taken,
    e.g. g_a, g_s and the entropy bottleneck of a hyperprior for the channel-wise model; returns
    their names."""
    initial = with_float_copies(load_file(path))  # exports from 0.5.3 on store h_s only as integers
    card_path = Path(path).with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    source, source_lambda = card.get("model"), card.get("lambda")
    own = model.state_dict()
    if source in (None, model.name):
        fresh_gains = {k: v for k, v in own.items() if k.startswith("gain_units.")}
        if model.gain_units is not None and "gain_units.lambda_levels" in initial:
            trained_gains = {k: initial.pop(k) for k in list(initial) if k.startswith("gain_units.")}
            fresh_gains = resampled_gains(trained_gains, model)
        elif model.gain_units is not None and source_lambda:  # fixed-rate weights: gain 1 at their λ
            centred = GainUnits(model.M, model.lambdas, centre=source_lambda).state_dict()
            fresh_gains = {f"gain_units.{k}": v for k, v in centred.items()}
        model.load_weights({**fresh_gains, **initial})
        return None
    taken: dict[str, torch.Tensor] = {}
    modules = []
    for name, _ in model.named_children():
        keys = [k for k in own if k.startswith(f"{name}.") and own[k].numel()]  # empty: built at export
        if keys and all(k in initial and initial[k].shape == own[k].shape for k in keys):
            taken |= {k: initial[k] for k in keys}
            modules.append(name)
    if not modules:
        raise SystemExit(f"train: {path} ({source}) has no module that fits {model.name}")
    model.load_state_dict(taken, strict=False)
    return sorted(modules)


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


def learning_rate(config: Config, step: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay from lr to lr_final over the steps or, with
    lr_by_time, over the time this invocation has left after warm-up (`time_fraction`
    of it spent)."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.lr_by_time:
        progress = min(1.0, time_fraction)
    else:
        progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1 + math.cos(math.pi * progress))


def sample_level(levels: tuple[float, ...], weights: tuple[float, ...], generator: torch.Generator) -> float:
    """The λ level of one step: uniform, or in proportion to `weights`.

    Weights are a sampling frequency, not a loss weight, because with gradient clipping at
    norm 1 every step moves the model about equally whatever its λ (the shipped channel-wise
    model's unclipped gradient norms, 8 crops: about 0.8 at λ 0.0018, 18 at λ 0.18), so how
    often a level is drawn is what sets its share of the training."""
    if not weights:
        return levels[int(torch.randint(len(levels), (), generator=generator))]
    return levels[int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=generator))]


def rate_distortion(model, x: torch.Tensor, lmbda: float, distortion: str = "mse") -> dict[str, torch.Tensor]:
    out = model(x, lmbda) if model.lambdas else model(x)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(torch.log(lik.float()).sum() for lik in out["likelihoods"].values()) / (-math.log(2) * num_pixels)
    x_hat = out["x_hat"].float()
    mse = torch.mean((x_hat - x) ** 2)
    if distortion == "ms-ssim":
        from pytorch_msssim import ms_ssim

        loss = lmbda * (1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0)) + bpp
    else:
        loss = lmbda * 255**2 * mse + bpp
    return {"loss": loss, "bpp": bpp, "mse": mse}


def optimizers(
    model: torch.nn.Module, lr: float, aux_lr: float, gain_lr_scale: float = 1.0
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the rate–distortion loss, and a separate Adam (its own learning rate) for the
    entropy bottleneck's `quantiles`, which only the auxiliary quantile loss trains.

    In the first, gain units are a parameter group of their own whose learning rate is
    `gain_lr_scale` times the others' (each group's `lr_scale`): Adam moves a log-gain by about
    the learning rate per step, so at a fine-tune's 1e-5..1e-4 the gains of a model started from
    fixed-rate weights would hardly leave their initial λ^(1/2) rule. The gains come first in
    `named_parameters`, so the parameters keep the order of checkpoints with a single group."""
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    gains = [p for n, p in model.named_parameters() if n.startswith("gain_units.")]
    others = [p for n, p in model.named_parameters() if not n.endswith("quantiles") and not n.startswith("gain_units.")]
    groups = [{"params": gains, "lr_scale": gain_lr_scale}] if gains else []
    groups.append({"params": others, "lr_scale": 1.0})
    return torch.optim.Adam(groups, lr=lr), torch.optim.Adam(aux_params, lr=aux_lr)


def optimization_step(
    model, loss: torch.Tensor, optimizer: torch.optim.Optimizer, aux_optimizer: torch.optim.Optimizer, clip: float
) -> torch.Tensor:
    """One step on `loss` (gradients clipped to norm `clip`), then one on the auxiliary loss, which it returns."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    optimizer.step()
    aux = model.aux_loss()
    aux_optimizer.zero_grad(set_to_none=True)
    aux.backward()
    aux_optimizer.step()
    return aux


def write_validation(path: Path, step: int, result: dict[str, float]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", *result])
        writer.writerow([step, *result.values()])


def training_card(config: dict, step: int, extra: dict, averaged: bool = False) -> dict:
    """The ``training`` section of an exported model card, from a run's configuration and progress;
    `averaged`: the exported weights are the run's weight average, not its last step's."""
    init = extra.get("init")
    init = describe_init(init) if isinstance(init, str) else init  # older checkpoints kept the path
    return {
        "training": {
            "data": config["data"],
            "steps": step,
            "total_steps": step + ((init or {}).get("steps") or 0),
            "total_hours": round(extra["seconds"] / 3600 + ((init or {}).get("hours") or 0), 3),
            "images_seen": extra["images_seen"],
            "crop": config["crop"],
            "batch": config["batch"],
            "hardware": extra.get("hardware", "not recorded (checkpoint predates it)"),
            "hours": round(extra["seconds"] / 3600, 3),
            "images_per_second": round(extra["images_seen"] / max(extra["seconds"], 1e-9), 2),
            "initialized_from": init,
            "exported_weights": f"moving average, decay {config.get('average_decay'):g}" if averaged else "last step",
            "config": config,
        }
    }


def main(argv: list[str]) -> None:
    config = parse_overrides(Config(), argv)
    if config.lr_by_time and config.max_minutes <= 0:
        raise SystemExit("train: --lr_by_time needs a positive --max_minutes to decay over")
    if config.distortion not in ("mse", "ms-ssim") or (config.distortion == "ms-ssim" and config.crop < 161):
        raise SystemExit("train: --distortion is mse or ms-ssim (which needs --crop of at least 161)")
    if config.threads:
        torch.set_num_threads(config.threads)
    cuda = config.device.startswith("cuda")
    use_amp = config.amp == "bf16" or (config.amp == "auto" and cuda)
    memory_format = torch.channels_last
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "ckpt.safetensors"

    levels, level_weights = comma_floats(config.lambdas), comma_floats(config.level_weights)
    if level_weights and (len(level_weights) != len(levels) or min(level_weights) < 0 or sum(level_weights) <= 0):
        raise SystemExit("train: --level_weights needs one non-negative weight per λ level of --lambdas, not all 0")
    model = ARCHITECTURES[config.arch](config.N, config.M, levels).to(config.device)
    optimizer, aux_optimizer = optimizers(model, config.lr, config.aux_lr, config.gain_lr_scale)
    dataset = ImageFolder([Path(p) for p in config.data.split(",")], config.crop, config.seed)
    print(f"train: {len(dataset)} images ({dataset.skipped} smaller than {config.crop}² skipped)", file=sys.stderr)

    step, extra = 0, {"seconds": 0.0, "images_seen": 0, "init": describe_init(config.init)}
    average = WeightAverage(model, config.average_decay) if config.average_decay else None
    if ckpt_path.exists():
        step, _, extra = checkpoint.load(ckpt_path, model, optimizer, aux_optimizer, dataset.generator, average)
        print(f"train: resumed from {ckpt_path} at step {step}", file=sys.stderr)
    elif config.init:
        partial = initialize_from(model, config.init)
        if partial:
            extra["init"] = {**(extra["init"] or {}), "partial": partial}
            print(f"train: {config.init} is another architecture: initialized {', '.join(partial)} from it",
                  file=sys.stderr)  # fmt: skip
        if average is not None:
            average.load({k: p.detach() for k, p in model.named_parameters()})
    extra["hardware"] = describe_hardware(config.device)  # this invocation's; the card names the last one
    model.to(config.device, memory_format=memory_format).train()
    if config.compile:
        for transform in ("g_a", "g_s", "h_a", "h_s"):
            if hasattr(model, transform):
                getattr(model, transform).compile()
    val_images = validate.load_images(Path(config.val_data), config.val_images) if config.val_every else []

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as log_file:
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["step", "loss", "bpp", "psnr", "aux", "lr", "images_per_s"])
        started = last_ckpt = decay_started = time.time()
        seconds_before = extra["seconds"]
        bar = tqdm(total=config.steps, initial=step, dynamic_ncols=True, file=sys.stderr)
        while step < config.steps:
            if config.max_minutes and time.time() - started > 60 * config.max_minutes:
                break
            time_fraction = 0.0
            if config.lr_by_time:
                if step == max(config.warmup, bar.initial):
                    decay_started = time.time()
                decay_seconds = 60 * config.max_minutes - (decay_started - started)
                time_fraction = (time.time() - decay_started) / max(decay_seconds, 1e-9)
            lr = learning_rate(config, step, time_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            x = dataset.batch(config.batch).to(config.device, non_blocking=True)
            x = x.contiguous(memory_format=memory_format)
            lmbda = config.lmbda
            if levels:
                lmbda = sample_level(levels, level_weights, dataset.generator)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
                terms = rate_distortion(model, x, lmbda, config.distortion)
            aux = optimization_step(model, terms["loss"], optimizer, aux_optimizer, config.clip)
            if average is not None:
                average.update(model)
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
            if config.val_every and step % config.val_every == 0:
                for val_lambda in (levels[0], levels[len(levels) // 2], levels[-1]) if levels else (config.lmbda,):
                    result = {"lambda": val_lambda, **validate.evaluate(model, val_lambda, val_images)}
                    write_validation(out_dir / "val.csv", step, result)
                    bar.write(
                        f"train: step {step}, λ={val_lambda:g}: Kodak {result['bpp']:.4f} bpp, "
                        f"{result['psnr']:.2f} dB (real coding)"
                    )
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
                    average,
                )
                last_ckpt = time.time()
        bar.close()
    extra["seconds"] = seconds_before + time.time() - started
    checkpoint.save(
        ckpt_path, model, optimizer, aux_optimizer, dataset.generator, step, dataclasses.asdict(config), extra, average
    )

    if config.export_dir:
        if average is not None:
            model.load_weights(average.state_dict(model))
        card_path = weights.export(
            model,
            None if levels else config.lmbda,
            Path(config.export_dir),
            training_card(dataclasses.asdict(config), step, extra, averaged=average is not None),
        )
        print(f"train: exported {card_path}", file=sys.stderr)
