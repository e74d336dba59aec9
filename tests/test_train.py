"""A few CPU training steps on synthetic images: the whole pipeline, end to end."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import weights
from codec.models import ARCHITECTURES
from tests.conftest import synthetic_image
from train.train import main, sample_level


def test_training_lowers_the_loss_and_exports_a_working_model(tmp_path, monkeypatch):
    data = tmp_path / "data" / "nested"
    data.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(synthetic_image(80, 96, seed=i)).save(data / f"{i}.png")
    Image.fromarray(synthetic_image(20, 20)).save(data / "too_small.png")
    torch.set_num_threads(2)
    common = [
        "--arch=bmshj2018-hyperprior", "--N=16", "--M=24", "--crop=64", "--batch=4", "--lr=1e-3",
        "--warmup=5", "--log_every=5", "--lmbda=0.01", f"--data={tmp_path / 'data'}", f"--out_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    main([*common, "--steps=40"])
    main([*common, "--steps=80", f"--export_dir={tmp_path / 'export'}"])  # resumes at step 40

    with open(tmp_path / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(5, 85, 5))
    losses = np.array([float(r["loss"]) for r in rows])
    assert losses[-4:].mean() < 0.7 * losses[:4].mean()

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path / "export"))
    (point,) = weights.rate_points()
    assert point.card["training"]["steps"] == 80 and point.card["training"]["images_seen"] == 320
    decoded = codec.decode(codec.encode(synthetic_image(50, 60, seed=9), model="bmshj2018-hyperprior"))
    assert decoded.size == (60, 50)


def test_a_fine_tune_records_what_it_started_from(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    common = ["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--crop=64", "--batch=2", f"--data={data}"]
    main([*common, "--steps=6", "--lmbda=0.01", f"--out_dir={tmp_path / 'a'}", f"--export_dir={tmp_path / 'base'}"])
    (base_card,) = (tmp_path / "base").glob("*.json")
    base_weights = base_card.with_suffix(".safetensors")
    main(
        [
            *common,
            "--steps=4",
            "--lmbda=0.05",
            f"--init={base_weights}",
            f"--out_dir={tmp_path / 'b'}",
            f"--export_dir={tmp_path / 'tuned'}",
        ]
    )
    (card_path,) = (tmp_path / "tuned").glob("*.json")
    training = json.loads(card_path.read_text())["training"]
    assert training["steps"] == 4 and training["total_steps"] == 10
    assert training["initialized_from"]["weights"] == base_weights.name
    assert training["initialized_from"]["sha256"] == json.loads(base_card.read_text())["sha256"]


def test_validation_codes_real_files_and_logs_bpp_and_psnr(tmp_path):
    data, kodak = tmp_path / "data", tmp_path / "kodak"
    data.mkdir()
    kodak.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    for i in range(2):
        Image.fromarray(synthetic_image(40, 72, seed=10 + i)).save(kodak / f"kodim{i:02d}.png")
    main(
        [
            "--arch=bmshj2018-hyperprior",
            "--N=8",
            "--M=12",
            "--crop=64",
            "--batch=2",
            "--steps=4",
            "--val_every=2",
            f"--val_data={kodak}",
            f"--data={data}",
            f"--out_dir={tmp_path / 'run'}",
        ]
    )
    with open(tmp_path / "run" / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]
    for row in rows:
        assert float(row["bpp"]) > 8 * 30 / (40 * 72)  # at least a header's worth of real bytes
        assert 5 < float(row["psnr"]) < 60


def test_bf16_autocast_keeps_likelihoods_in_float32():
    model = ARCHITECTURES["bmshj2018-hyperprior"](8, 12)
    x = torch.rand(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out["x_hat"].dtype == torch.bfloat16
    assert all(lik.dtype == torch.float32 for lik in out["likelihoods"].values())


def test_ms_ssim_loss_runs_and_needs_large_enough_crops(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(synthetic_image(192, 192)).save(data / "a.png")
    common = ["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--batch=1", "--steps=2", "--distortion=ms-ssim"]
    with pytest.raises(SystemExit):
        main([*common, "--crop=64", f"--data={data}", f"--out_dir={tmp_path / 'a'}"])
    main([*common, "--crop=176", "--lmbda=10", "--amp=bf16", f"--data={data}", f"--out_dir={tmp_path / 'b'}"])
    assert (tmp_path / "b" / "ckpt.safetensors").exists()


def test_pack_downscales_large_photos_thins_a_set_drops_small_ones_and_refuses_collisions(tmp_path):
    from train.pack import main as pack

    rng = np.random.default_rng(0)
    photos = {"big/a.png": (600, 520), "big/b.png": (300, 280), "small/c.png": (200, 400), "big/deep/d.png": (256, 256)}
    for name, size in photos.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / name)
    for index in range(4):
        (tmp_path / "thin").mkdir(exist_ok=True)
        Image.fromarray(np.full((256, 256, 3), index, np.uint8)).save(tmp_path / f"thin/{index}.png")
    out = tmp_path / "packed"
    pack(["--data", str(tmp_path), "--out", str(out), "--every", "thin=2"])
    sizes = {}
    for path in out.iterdir():
        with Image.open(path) as image:
            sizes[path.name] = image.size
    assert sizes == {
        "big-a.jpg": (300, 260),
        "big-b.jpg": (300, 280),
        "big-deep-d.jpg": (256, 256),
        "thin-0.jpg": (256, 256),
        "thin-2.jpg": (256, 256),
    }
    with pytest.raises(SystemExit, match="not empty"):
        pack(["--data", str(tmp_path), "--out", str(out)])
    (tmp_path / "big/a.jpg").write_bytes((tmp_path / "big/b.png").read_bytes())
    with pytest.raises(SystemExit, match="two photos pack to big-a.jpg"):
        pack(["--data", str(tmp_path), "--out", str(tmp_path / "again")])


def test_the_learning_rate_warms_up_then_decays_over_steps_or_over_the_time_budget():
    from train.train import Config, learning_rate

    by_steps = Config(lr=1e-4, lr_final=1e-5, warmup=10, steps=110)
    assert learning_rate(by_steps, 0) == pytest.approx(1e-5)
    assert learning_rate(by_steps, 10) == pytest.approx(1e-4)
    assert learning_rate(by_steps, 60) == pytest.approx(5.5e-5)
    assert learning_rate(by_steps, 110) == pytest.approx(1e-5)
    by_time = Config(lr=1e-4, lr_final=1e-5, warmup=10, steps=10**9, lr_by_time=True)
    assert learning_rate(by_time, 20, time_fraction=0.5) == pytest.approx(5.5e-5)
    assert learning_rate(by_time, 20, time_fraction=1.2) == pytest.approx(1e-5)
    with pytest.raises(SystemExit, match="max_minutes"):
        main(["--lr_by_time=true", "--max_minutes=0"])


def test_weights_travel_to_a_gpu_in_half_precision_and_come_back_as_the_same_export(tmp_path):
    from safetensors.torch import load_file

    from train.export import export_checkpoint
    from train.transfer import half, slim

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    common = [
        "--arch=bmshj2018-hyperprior",
        "--N=8",
        "--M=12",
        "--crop=64",
        "--batch=2",
        "--lmbda=0.01",
        f"--data={data}",
    ]
    main([*common, "--steps=4", f"--out_dir={tmp_path / 'a'}", f"--export_dir={tmp_path / 'base'}"])
    (base_card,) = (tmp_path / "base").glob("*.json")

    carried = half(base_card.with_suffix(".safetensors"), tmp_path / "init")
    tensors = load_file(str(carried))
    assert tensors["g_a.0.weight"].dtype == torch.float16
    assert tensors["gaussian_conditional._quantized_cdf"].dtype == torch.int32  # tables stay exact
    assert not any(k.startswith("h_s_integer.") for k in tensors)

    main(
        [
            *common,
            "--steps=3",
            f"--init={carried}",
            f"--out_dir={tmp_path / 'b'}",
            f"--export_dir={tmp_path / 'direct'}",
        ]
    )
    slimmed = slim(tmp_path / "b" / "ckpt.safetensors", tmp_path / "back" / "b.safetensors")
    assert not any(k.startswith("optimizer.") for k in load_file(str(slimmed)))
    card_path = export_checkpoint(slimmed, tmp_path / "exported")

    (direct_card,) = (tmp_path / "direct").glob("*.json")
    assert load_file(str(direct_card.with_suffix(".safetensors")))["g_a.0.weight"].dtype == torch.float32
    assert json.loads(card_path.read_text()) == json.loads(direct_card.read_text())
    assert (
        json.loads(card_path.read_text())["training"]["initialized_from"]["sha256"]
        == (json.loads(base_card.read_text())["sha256"])
    )


def test_a_half_precision_variable_rate_copy_keeps_its_lambda_levels_and_loads_in_float32(tmp_path):
    from safetensors.torch import load_file

    from train.train import initialize_from
    from train.transfer import half

    levels = (0.0018, 0.013, 0.18)
    model = ARCHITECTURES["bmshj2018-hyperprior"](8, 12, levels)
    card_path = weights.export(model, None, tmp_path / "shipped", {})
    carried = half(card_path.with_suffix(".safetensors"), tmp_path / "init")
    assert load_file(str(carried))["gain_units.lambda_levels"].dtype == torch.float64

    fresh = ARCHITECTURES["bmshj2018-hyperprior"](8, 12, levels)
    initialize_from(fresh, str(carried))
    for (name, original), (_, loaded) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert loaded.dtype == torch.float32, name
        # h_s is stored only as its integer copy: derived back to within its quantization step
        atol = original.abs().max().item() * 2.0**-12 if name.startswith("h_s.") else 1e-7
        torch.testing.assert_close(loaded, original, rtol=1e-3, atol=atol)


def test_fixed_rate_weights_start_a_variable_rate_model_with_gain_one_at_their_lambda(tmp_path):
    from train.train import initialize_from

    torch.manual_seed(0)
    fixed = ARCHITECTURES["bmshj2018-factorized"](8, 12)
    card = weights.export(fixed, 0.013, tmp_path, {"training": {}})
    variable = ARCHITECTURES["bmshj2018-factorized"](8, 12, (0.0018, 0.0067, 0.025, 0.0483))
    initialize_from(variable, str(card.with_suffix(".safetensors")))
    assert torch.allclose(variable.gain_units.gain(0.013), torch.ones(1))
    assert torch.allclose(variable.gain_units.inverse_gain(0.013), torch.ones(1))
    ratio = variable.gain_units.gain(0.0483) / variable.gain_units.gain(0.0067)
    assert torch.allclose(ratio, torch.tensor((0.0483 / 0.0067) ** 0.5))  # the λ^(1/2) step rule around it
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(variable.eval()(x, 0.013)["x_hat"], fixed.eval()(x)["x_hat"])


def test_gain_units_learn_at_their_own_multiple_of_the_learning_rate(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(synthetic_image(64, 64)).save(data / "0.png")
    model = ARCHITECTURES["bmshj2018-factorized"](8, 12, (0.004, 0.03))
    from train.train import optimizers

    optimizer, _ = optimizers(model, 1e-4, 1e-3, gain_lr_scale=20.0)
    gains, others = optimizer.param_groups
    assert gains["params"] == [model.gain_units.log_gain, model.gain_units.log_inverse_gain]
    assert (gains["lr_scale"], others["lr_scale"]) == (20.0, 1.0)
    main(["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--crop=64", "--batch=1", "--lambdas=0.004,0.03",
          "--lr=1e-4", "--warmup=1", "--steps=3", "--gain_lr_scale=20", f"--data={data}",
          f"--out_dir={tmp_path / 'run'}"])  # fmt: skip
    from train import checkpoint

    meta, _ = checkpoint.read(tmp_path / "run" / "ckpt.safetensors")
    groups = meta["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([20 * groups[1]["lr"], groups[1]["lr"]])
    main(["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--crop=64", "--batch=1", "--lambdas=0.004,0.03",
          "--lr=1e-4", "--warmup=1", "--steps=4", "--gain_lr_scale=5", f"--data={data}",
          f"--out_dir={tmp_path / 'run'}"])  # fmt: skip
    groups = checkpoint.read(tmp_path / "run" / "ckpt.safetensors")[0]["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([5 * groups[1]["lr"], groups[1]["lr"]])  # a resume's flag


def test_a_checkpoint_saved_with_one_parameter_group_resumes_with_its_optimizer_state(tmp_path):
    from train import checkpoint
    from train.train import optimizers

    torch.manual_seed(0)
    model = ARCHITECTURES["bmshj2018-factorized"](8, 12, (0.004, 0.03))
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    single = torch.optim.Adam(main_params, lr=1e-4)  # how optimizers() grouped them before 0.5.4
    _, aux = optimizers(model, 1e-4, 1e-3)
    model(torch.rand(1, 3, 64, 64), 0.004)["x_hat"].mean().backward()
    single.step()
    generator = torch.Generator()
    checkpoint.save(tmp_path / "ckpt.safetensors", model, single, aux, generator, 1, {}, {})

    regrouped, aux = optimizers(model, 1e-4, 1e-3, gain_lr_scale=20.0)
    step, _, _ = checkpoint.load(tmp_path / "ckpt.safetensors", model, regrouped, aux, generator)
    assert step == 1 and [g["lr_scale"] for g in regrouped.param_groups] == [20.0, 1.0]
    stepped = [p for p in main_params if p in single.state]  # those with a gradient
    assert model.gain_units.log_gain in stepped and len(stepped) > 2
    for parameter in stepped:
        assert torch.equal(regrouped.state[parameter]["exp_avg"], single.state[parameter]["exp_avg"])


def test_lambda_levels_are_drawn_uniformly_or_in_proportion_to_level_weights(tmp_path):
    levels = (0.002, 0.02, 0.2)
    generator = torch.Generator().manual_seed(0)
    uniform = [sample_level(levels, (), generator) for _ in range(3000)]
    weighted = [sample_level(levels, (2.0, 1.0, 0.0), generator) for _ in range(3000)]
    assert all(abs(uniform.count(level) / 3000 - 1 / 3) < 0.04 for level in levels)
    assert abs(weighted.count(0.002) / 3000 - 2 / 3) < 0.04 and 0.2 not in weighted

    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(synthetic_image(64, 64)).save(data / "a.png")
    common = ["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--crop=64", "--batch=1", "--steps=1", f"--data={data}"]
    for bad in ("1,1", "1,-1,1", "0,0,0"):
        with pytest.raises(SystemExit, match="level_weights"):
            main([*common, "--lambdas=0.002,0.02,0.2", f"--level_weights={bad}", f"--out_dir={tmp_path / 'run'}"])


def test_the_weight_average_follows_each_step_with_its_decay():
    from train.average import WeightAverage

    model = torch.nn.Linear(3, 2)
    start = model.weight.detach().clone()
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model.weight.add_(4.0)
    average.update(model)
    assert torch.allclose(average.state_dict(model)["weight"], start + 1.0)
    assert torch.equal(average.state_dict(model)["bias"], model.bias)  # unchanged parameters stay put
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_a_run_with_a_weight_average_resumes_it_and_exports_it_or_the_last_step(tmp_path):
    from safetensors.torch import load_file, save_file

    from train import checkpoint
    from train.export import export_checkpoint
    from train.transfer import slim

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    run, ckpt = tmp_path / "run", tmp_path / "run" / "ckpt.safetensors"
    common = ["--arch=bmshj2018-factorized", "--N=8", "--M=12", "--crop=64", "--batch=2", "--lr=1e-2", "--warmup=1",
              "--average_decay=0.5", f"--data={data}", f"--out_dir={run}"]  # fmt: skip
    main([*common, "--steps=3"])
    meta, tensors = checkpoint.read(ckpt)
    average = checkpoint.average_state(tensors)
    assert average and not all(torch.equal(v, tensors[f"model.{k}"]) for k, v in average.items())

    # Zero the saved average: one more step must halve the new weights, so the run resumed it.
    save_file(tensors | {f"average.{k}": torch.zeros_like(v) for k, v in average.items()}, str(ckpt),
              metadata={"checkpoint": json.dumps(meta)})  # fmt: skip
    main([*common, "--steps=4"])
    _, tensors = checkpoint.read(ckpt)
    for name, value in checkpoint.average_state(tensors).items():
        assert torch.allclose(value, tensors[f"model.{name}"] / 2)

    slimmed = slim(ckpt, tmp_path / "back" / "run.safetensors")
    name = "g_s.0.weight"
    for last, expected in ((False, tensors[f"average.{name}"]), (True, tensors[f"model.{name}"])):
        card_path = export_checkpoint(slimmed, tmp_path / f"export-{last}", last=last)
        assert torch.equal(load_file(str(card_path.with_suffix(".safetensors")))[name], expected)
        exported = json.loads(card_path.read_text())["training"]["exported_weights"]
        assert exported == ("last step" if last else "moving average, decay 0.5")
