"""The mean-scale hyperprior (mbt2018-mean): coding round trips, exact integer means, training."""

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import api, tiling, weights
from codec.image import pad
from codec.integer import FRACTION_BITS
from codec.models import PAD_MULTIPLE
from tests.conftest import natural_image, synthetic_image
from train.train import main as train_main

MODEL = "mbt2018-mean"


@pytest.mark.parametrize("coder", ["range", "ans"])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (65, 129), (70, 100)])
def test_round_trips_at_odd_sizes_with_both_coders(tiny_weights, coder, height, width):
    data = codec.encode(natural_image(height, width), quality=50, model=MODEL, coder=coder)
    assert codec.read_header(data).model == MODEL
    assert codec.decode(data).size == (width, height)


def test_decoded_image_is_the_synthesis_of_residuals_plus_integer_means(tiny_weights):
    array = natural_image(70, 100)
    net = weights.load(api.select_rate_point(MODEL, 50))
    with torch.no_grad():
        y = tiling.analysis(net.g_a, pad(array, PAD_MULTIPLE))
        z_symbols = torch.round(net.h_a(y) - net._z_medians())
        _, means = net._y_parameters(z_symbols)
        y_hat = torch.round(y - means) + means
        expected = tiling.synthesis(net.g_s, y_hat, 70, 100)
    np.testing.assert_array_equal(np.asarray(codec.decode(codec.encode(array, quality=50, model=MODEL))), expected)


def test_means_are_exact_fixed_point_values_independent_of_threads(tiny_weights):
    net = weights.load(api.select_rate_point(MODEL, 50))
    z = torch.randint(-6, 7, (1, net.N, 5, 7)).float()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = net._y_parameters(z)
        torch.set_num_threads(2)
        two = net._y_parameters(z)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    scaled = one[1].double() * 2**FRACTION_BITS
    assert torch.equal(scaled, scaled.round())


def test_a_few_training_steps_export_a_model_that_codes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    train_main(
        [
            f"--arch={MODEL}",
            "--N=8",
            "--M=12",
            "--crop=64",
            "--batch=2",
            "--steps=6",
            "--lmbda=0.01",
            f"--data={data}",
            f"--out_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
        ]
    )
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path / "export"))
    assert codec.decode(codec.encode(synthetic_image(40, 50), model=MODEL)).size == (50, 40)
