"""The weights in assets/models: complete cards, matching files, trained behaviour."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

import codec
from benchmarks import data, harness, plot
from codec import weights
from codec.errors import WeightsError
from codec.metrics import psnr
from codec.models import ARCHITECTURES
from tests.conftest import natural_image

SHIPPED = weights.DEFAULT_WEIGHTS_DIR
SHIPPED_MODELS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "minnen2020-channelwise")


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(SHIPPED))
    return weights.rate_points(directory=SHIPPED)


def test_shipped_models_cover_at_least_two_trained_rates_with_complete_cards(shipped):
    for arch in SHIPPED_MODELS:
        points = [p for p in shipped if p.model == arch]
        assert sum(len(p.card["lambdas"]) if p.variable_rate else 1 for p in points) >= 2, arch
        for point in points:
            card = point.card
            training = card["training"]  # a fine-tune may be short: what counts is all the training behind it
            assert training.get("total_steps", training["steps"]) >= 1000 and training["hours"] > 0
            assert {"hardware", "data", "images_seen"} <= card["training"].keys()
            bpps, psnrs = (card["kodak"][k] if point.variable_rate else [card["kodak"][k]] for k in ("bpp", "psnr"))
            assert card["kodak"]["images"] == 24 and min(bpps) > 0 and min(psnrs) > 20
            assert weights.sha256_of(point.weights_path) == card["sha256"]


def test_the_default_model_ships_weights(shipped):
    assert any(p.model == codec.DEFAULT_MODEL for p in shipped)


def test_superseded_weights_match_their_cards_and_are_never_used_to_encode(shipped):
    superseded = sorted((SHIPPED / weights.SUPERSEDED).glob("*/*.json"))
    assert superseded
    current = {p.card["sha256"] for p in shipped}
    for card_path in superseded:
        card = json.loads(card_path.read_text())
        assert weights.sha256_of(card_path.with_name(card["weights"])) == card["sha256"]
        assert card["sha256"] not in current


def test_no_pickled_weights_are_shipped():
    assert not [p for p in SHIPPED.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin")]
    for card in SHIPPED.rglob("*.json"):
        assert json.loads(card.read_text())["weights"].endswith(".safetensors")


def test_an_architecture_without_shipped_weights_is_a_clear_error_not_untrained_weights(shipped):
    for arch in set(ARCHITECTURES) - {p.model for p in weights.rate_points()}:
        with pytest.raises(WeightsError, match="no weights"):
            codec.encode(natural_image(32, 32), model=arch)


@pytest.mark.parametrize("model", SHIPPED_MODELS)
def test_shipped_models_reconstruct_a_photo_well_and_rate_grows_with_quality(shipped, model):
    image = natural_image(128, 128)
    sizes, qualities = [], []
    for quality in (1, 100):
        data = codec.encode(image, quality=quality, model=model)
        sizes.append(len(data))
        qualities.append(psnr(image, np.asarray(codec.decode(data))))
    assert sizes[0] < sizes[1] and qualities[0] < qualities[1]
    assert qualities[1] > 20  # a hard, detailed crop; untrained weights give about 7 dB


def test_reduced_kodak_benchmark_measures_every_codec_the_same_way(shipped, tmp_path):
    directory = data.default_kodak()
    if directory is not None and directory.is_dir():
        images = data.kodak_images(directory, limit=2)
    else:  # a clone without ../shared: two crops of the bundled sample stand in for Kodak
        images = [tmp_path / "crop0.png", tmp_path / "crop1.png"]
        Image.fromarray(natural_image(448, 384)[:, ::-1]).save(images[0])
        Image.fromarray(natural_image(384, 416)).save(images[1])
    pixels = {p.name: np.prod(Image.open(p).size) for p in images}
    summary = harness.run(images, tmp_path, classical_names=["JPEG 4:2:0", "WebP"], max_settings=2)

    rows = list(csv.DictReader(open(tmp_path / "kodak-per-image.csv")))
    assert {r["codec"] for r in rows} == {
        "aecodec bmshj2018-factorized",
        "aecodec bmshj2018-hyperprior",
        "aecodec minnen2020-channelwise",
        "JPEG 4:2:0",
        "WebP",
    }
    for row in rows:
        assert float(row["bpp"]) == int(row["bytes"]) * 8 / pixels[row["image"]]
        assert 15 < float(row["psnr"]) < 50 and 0 < float(row["ms_ssim"]) <= 1
    jpeg = json.loads((tmp_path / "jpeg-4-2-0.json").read_text())
    assert jpeg["name"] == "JPEG 4:2:0" and len(jpeg["results"]["bpp"]) == 2
    assert set(jpeg["results"]) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
    ours = summary["codecs"]["aecodec bmshj2018-hyperprior"]
    assert "JPEG 4:2:0 (this run)" in ours["bd_rate_percent"]
    speed = summary["speed"]["aecodec bmshj2018-hyperprior"]
    assert 0 < speed["decode_entropy_ms"] < speed["decode_ms"]
    assert "| aecodec bmshj2018-hyperprior |" in harness.readme_table(summary)
    paths = plot.rd_plot(tmp_path)
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_the_transform_ceiling_of_the_hyperprior_at_a_rate_bounds_what_it_codes(shipped):
    from benchmarks.transform_ceiling import ceiling
    from codec import api, container

    photo = natural_image(64, 128)  # multiples of 64, as Kodak: no padding in the coded path
    lmbda = 0.0483
    point = next(p for p in shipped if p.model == "bmshj2018-hyperprior" and lmbda in (p.lambdas or (p.lmbda,)))
    measured = ceiling(point, lmbda, [photo])
    net = weights.load(point)
    header, streams = container.unpack(api.encode_with(net, photo, "RGB", point.fingerprint, lmbda))
    coded = psnr(photo, api.decode_with(net, header, streams))
    assert measured["rounded_psnr"] == pytest.approx(coded, abs=0.05)  # the same ŷ, through the same g_s
    assert measured["unquantized_psnr"] > coded
