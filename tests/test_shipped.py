"""The weights in assets/models: complete cards, matching files, trained behaviour."""

import json

import numpy as np
import pytest

import codec
from benchmarks import kodak
from codec import weights
from codec.metrics import psnr
from codec.models import ARCHITECTURES
from tests.conftest import natural_image

SHIPPED = weights.DEFAULT_WEIGHTS_DIR


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(SHIPPED))
    return weights.rate_points(directory=SHIPPED)


def test_every_architecture_ships_at_least_two_trained_rate_points(shipped):
    for arch in ARCHITECTURES:
        points = [p for p in shipped if p.model == arch]
        assert len(points) >= 2, arch
        for point in points:
            card = point.card
            assert card["training"]["steps"] >= 1000 and card["training"]["hours"] > 0
            assert {"hardware", "data", "images_seen"} <= card["training"].keys()
            assert card["kodak"]["images"] == 24 and card["kodak"]["bpp"] > 0 and card["kodak"]["psnr"] > 20
            assert weights.sha256_of(point.weights_path) == card["sha256"]


def test_no_pickled_weights_are_shipped():
    assert not [p for p in SHIPPED.iterdir() if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]
    for card in SHIPPED.glob("*.json"):
        assert json.loads(card.read_text())["weights"].endswith(".safetensors")


@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_shipped_models_reconstruct_a_photo_well_and_rate_grows_with_quality(shipped, model):
    image = natural_image(128, 128)
    sizes, qualities = [], []
    for quality in (1, 100):
        data = codec.encode(image, quality=quality, model=model)
        sizes.append(len(data))
        qualities.append(psnr(image, np.asarray(codec.decode(data))))
    assert sizes[0] < sizes[1] and qualities[0] < qualities[1]
    assert qualities[1] > 27


def test_reduced_kodak_benchmark_runs(shipped, tmp_path, capsys):
    directory = kodak.default_kodak()
    if directory is None:
        pytest.skip("Kodak not available")
    out = tmp_path / "kodak.json"
    kodak.main(["--limit", "2", "--model", "bmshj2018-factorized", "--out", str(out)])
    report = json.loads(out.read_text())
    (first, *rest) = report["results"]
    row = first["images"][0]
    assert row["image"] == "kodim01.png" and row["bpp"] == row["bytes"] * 8 / (768 * 512)
    assert 20 < row["psnr"] < 50 and row["decode_entropy_s"] < row["decode_s"]
    assert len(report["jpeg_420"]["bpp"]) == 19
    assert "JPEG 4:2:0 (this run)" in report["bd_rate_percent"]["bmshj2018-factorized"]
