"""Variable rate: gain units, a continuous quality dial, rate targets, and training one model for many λ."""

import json
import math
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import api, weights
from codec.errors import FormatError
from codec.layers import GainUnits
from codec.metrics import psnr
from codec.models import ARCHITECTURES
from tests.conftest import natural_image, synthetic_image
from train.train import initialize_from
from train.train import main as train_main

LEVELS = (0.0018, 0.0067, 0.025, 0.18)


@pytest.fixture(scope="module")
def variable_rate_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vr-weights")
    for arch in ARCHITECTURES.values():
        torch.manual_seed(0)
        weights.export(arch(8, 12, LEVELS), None, directory, {"training": {"note": "untrained test model"}})
    return directory


@pytest.fixture
def variable_rate(variable_rate_dir, monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(variable_rate_dir))
    return variable_rate_dir


def test_gains_match_each_level_and_interpolate_in_the_log_domain():
    units = GainUnits(3, LEVELS)
    with torch.no_grad():
        units.log_gain.copy_(torch.arange(12.0).view(4, 3))
    assert torch.allclose(units.gain(0.0067).flatten(), torch.tensor([3.0, 4.0, 5.0]).exp())
    between = units.gain(math.sqrt(0.0067 * 0.025)).flatten()
    assert torch.allclose(between, torch.tensor([4.5, 5.5, 6.5]).exp())
    assert torch.equal(units.gain(1e-6), units.gain(0.0018)) and torch.equal(units.gain(9.0), units.gain(0.18))
    with pytest.raises(ValueError):
        GainUnits(3, (0.01, 0.005))


def test_resampled_gains_keep_trained_levels_and_extend_with_the_square_root_rule():
    units = GainUnits(3, LEVELS[:3])
    with torch.no_grad():
        units.log_gain.copy_(torch.randn(3, 3))
        units.log_inverse_gain.copy_(torch.randn(3, 3))
    wider = units.resampled((0.0009, *LEVELS[:3], 0.1, 0.18))
    for lmbda in (*LEVELS[:3], math.sqrt(0.0018 * 0.0067)):
        assert torch.allclose(wider.gain(lmbda), units.gain(lmbda), rtol=1e-5)
        assert torch.allclose(wider.inverse_gain(lmbda), units.inverse_gain(lmbda), rtol=1e-5)
    assert torch.allclose(wider.gain(0.18), units.gain(0.025) * math.sqrt(0.18 / 0.025), rtol=1e-5)
    assert torch.allclose(wider.inverse_gain(0.18), units.inverse_gain(0.025) / math.sqrt(0.18 / 0.025), rtol=1e-5)
    assert torch.allclose(wider.gain(0.0009), units.gain(0.0018) * math.sqrt(0.5), rtol=1e-5)


def test_fine_tuning_for_more_levels_starts_from_the_trained_gains(tmp_path):
    torch.manual_seed(0)
    narrow = ARCHITECTURES["bmshj2018-hyperprior"](8, 12, LEVELS[:3])
    with torch.no_grad():
        narrow.gain_units.log_gain.add_(torch.randn(3, 12))
    weights.export(narrow, None, tmp_path, {"training": {"note": "untrained test model"}})
    (path,) = tmp_path.glob("*.safetensors")
    wide = ARCHITECTURES["bmshj2018-hyperprior"](8, 12, LEVELS)
    assert initialize_from(wide, str(path)) is None
    assert wide.lambdas == LEVELS
    assert torch.allclose(wide.gain_units.gain(0.0067), narrow.gain_units.gain(0.0067), rtol=1e-5)
    assert torch.equal(wide.g_a[0].weight, narrow.g_a[0].weight)


@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_quality_is_continuous_and_the_file_records_the_rate(variable_rate, model):
    image = natural_image(64, 96)
    rates = [codec.read_header(codec.encode(image, quality=q, model=model)).rate for q in (30, 30.5, 31)]
    assert rates[0] < rates[1] < rates[2]
    assert rates[0] == pytest.approx(api.lambda_for_quality(30), rel=1e-6)
    assert codec.decode(codec.encode(image, quality=30.5, model=model)).size == (96, 64)


def test_a_rate_outside_the_trained_range_is_refused(variable_rate):
    data = bytearray(codec.encode(synthetic_image(32, 32), quality=50))
    at = 7 + data[6] + 8
    struct.pack_into("<f", data, at, 0.5)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(FormatError, match="rate parameter"):
        codec.decode(bytes(data))


def test_target_bpp_and_target_psnr_are_met_by_bisection(variable_rate):
    image = natural_image(96, 128)
    low = codec.read_header(codec.encode(image, quality=1))
    bpps = [len(codec.encode(image, quality=q)) * 8 / (96 * 128) for q in (1, 100)]
    target = 0.5 * (bpps[0] + bpps[1])
    data, bpp, _ = api.encode_to_target(image, target_bpp=target)
    assert bpp == len(data) * 8 / (96 * 128) and bpp <= target
    assert bpp > bpps[0] and low.rate < codec.read_header(data).rate
    p_low = psnr(image, np.asarray(codec.decode(codec.encode(image, quality=1))))
    data_psnr, _, reached = api.encode_to_target(image, target_psnr=p_low - 0.1)
    assert reached >= p_low - 0.1 and codec.read_header(data_psnr).rate == pytest.approx(LEVELS[0], rel=1e-6)


def test_target_psnr_of_a_gray_image_is_that_of_the_gray_pixels_it_decodes_to(variable_rate):
    gray = natural_image(96, 128)[..., 1]
    data, _, reached = api.encode_to_target(gray, target_psnr=20.0)
    decoded = codec.decode(data)
    assert decoded.mode == "L" and reached == pytest.approx(psnr(gray, np.asarray(decoded)))


def test_training_a_variable_rate_model_exports_one_card_for_all_levels(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    train_main(
        [
            "--arch=bmshj2018-hyperprior",
            "--N=8",
            "--M=12",
            "--crop=64",
            "--batch=2",
            "--steps=6",
            "--lambdas=0.002,0.02,0.2",
            f"--data={data}",
            f"--out_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
        ]
    )
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path / "export"))
    (point,) = weights.rate_points()
    assert point.variable_rate and point.lambdas == (0.002, 0.02, 0.2) and point.card["lambda"] is None
    assert (tmp_path / "export" / "bmshj2018-hyperprior-variable-rate.safetensors").exists()
    data = codec.encode(synthetic_image(40, 40), quality=60, model="bmshj2018-hyperprior")
    assert codec.decode(data).size == (40, 40)


def test_the_benchmark_sweeps_a_variable_rate_model(variable_rate, tmp_path):
    from benchmarks import harness

    images = []
    for i in range(2):
        images.append(tmp_path / f"img{i}.png")
        Image.fromarray(natural_image(64, 96)[:, ::-1] if i else natural_image(64, 96)).save(images[-1])
    summary = harness.run(images, tmp_path / "out", classical_names=["JPEG 4:2:0"], max_settings=2)
    for model in ARCHITECTURES:
        curve = (tmp_path / "out" / f"aecodec-{model}.json").read_text()
        assert "variable-rate model" in curve
        assert len(json.loads(curve)["results"]["bpp"]) == harness.VARIABLE_RATE_SETTINGS
    assert set(summary["codecs"]) >= {f"aecodec {m}" for m in ARCHITECTURES}


def test_target_bpp_with_fixed_rate_points_picks_and_records_the_right_weights(tiny_weights):
    image = natural_image(64, 96)
    sizes = {q: len(codec.encode(image, quality=q)) * 8 / (64 * 96) for q in (1, 100)}
    data, bpp, _ = api.encode_to_target(image, target_bpp=max(sizes.values()) + 1)
    assert bpp == pytest.approx(sizes[100]) and codec.decode(data).size == (96, 64)
    data, bpp, _ = api.encode_to_target(image, target_bpp=min(sizes.values()) / 2)  # unreachable: lowest rate
    assert bpp == pytest.approx(sizes[1]) and codec.decode(data).size == (96, 64)


def test_the_cli_refuses_quality_together_with_a_target(tmp_path):
    import subprocess
    import sys

    Image.fromarray(synthetic_image(16, 16)).save(tmp_path / "in.png")
    result = subprocess.run(
        [sys.executable, "-m", "codec.cli", "encode", str(tmp_path / "in.png"), str(tmp_path / "o.aec"),
         "-q", "50", "--target-bpp", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "cannot be combined" in result.stderr
    assert not (tmp_path / "o.aec").exists()
