"""The channel-wise autoregressive model (minnen2020-channelwise): round trips, slices, determinism, training."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import codec
from codec import api, container, integer, tiling, weights
from codec.errors import WeightsError
from codec.image import pad
from codec.integer import FRACTION_BITS, with_float_copies
from codec.models import PAD_MULTIPLE, channelwise
from codec.models.channelwise import NUM_SLICES
from tests.conftest import natural_image, synthetic_image
from train.train import main as train_main

MODEL = "minnen2020-channelwise"


@pytest.mark.parametrize("coder", ["range", "ans"])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (65, 129), (70, 100)])
def test_round_trips_at_odd_sizes_with_both_coders(tiny_weights, coder, height, width):
    data = codec.encode(natural_image(height, width), quality=50, model=MODEL, coder=coder)
    assert codec.read_header(data).model == MODEL
    assert codec.decode(data).size == (width, height)


def test_each_slice_is_its_own_stream_after_z(tiny_weights):
    header, streams = container.unpack(codec.encode(natural_image(70, 100), model=MODEL))
    assert len(streams) == 1 + NUM_SLICES
    assert header.latent_shapes == ((8, 2, 2), *[(12 // NUM_SLICES, 8, 8)] * NUM_SLICES)  # padded to 128²


def test_decoded_latent_is_symbols_plus_exact_means_plus_bounded_residual_prediction(tiny_weights):
    net = weights.load(api.select_rate_point(MODEL, 50))
    with torch.no_grad():
        y = tiling.analysis(net.g_a, pad(natural_image(70, 100), PAD_MULTIPLE))
        y_hat = net.decompress_latent(net.compress_latent(y), 128, 128)
    assert y_hat.shape == y.shape
    assert (y_hat - y).abs().max() <= 1.0  # rounding error ≤ 0.5, LRP ≤ 0.5 in magnitude


def test_slice_parameters_are_fixed_point_and_independent_of_threads(tiny_weights):
    net = weights.load(api.select_rate_point(MODEL, 50))
    z = torch.randint(-6, 7, (1, net.N, 5, 7)).float()
    previous_slice = torch.randint(-20, 21, (1, net.slice_channels, 20, 28), dtype=torch.int32) * 2**FRACTION_BITS
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            hyper = net._hyper(z)
            results.append(net._slice_parameters(1, [hyper, previous_slice]))
    finally:
        torch.set_num_threads(before)
    (indexes_1, means_1), (indexes_2, means_2) = results
    assert torch.equal(indexes_1, indexes_2) and torch.equal(means_1, means_2)
    assert indexes_1.dtype == means_1.dtype == torch.int32


def test_slice_networks_give_the_same_integers_in_row_bands_as_in_one_piece(tiny_weights, monkeypatch):
    net = weights.load(api.select_rate_point(MODEL, 50))
    support = torch.randint(-(2**20), 2**20, (1, 2 * net.M + 2 * net.slice_channels, 41, 13)).double()
    whole = net.entropy_parameters_integer[2].run(support)
    monkeypatch.setattr(integer, "BAND_ROWS", 5)
    assert torch.equal(net.entropy_parameters_integer[2].run(support), whole)
    parts = list(support.split([2 * net.M, net.slice_channels, net.slice_channels], dim=1))
    assert torch.equal(net.entropy_parameters_integer[2].run_concatenated(parts), whole)  # BAND_ROWS = 5
    for band_rows in (1, 3, 7, 40, 64):
        assert torch.equal(net.entropy_parameters_integer[2].run_concatenated(parts, band_rows), whole), band_rows


def test_residual_prediction_in_row_bands_matches_one_piece_to_float_rounding(tiny_weights, monkeypatch):
    net = weights.load(api.select_rate_point(MODEL, 50))
    hyper = torch.randint(-(2**20), 2**20, (1, 2 * net.M, 41, 13), dtype=torch.int32)
    decoded = torch.randn(1, net.M, 41, 13) * 8
    whole = net._with_residual_prediction(hyper, decoded)
    as_floats = net._with_residual_prediction(hyper.double() / 2**FRACTION_BITS, decoded)
    assert torch.equal(as_floats, whole)  # int32 fixed point gives the float h_s output exactly
    for band_rows in (1, 3, 40):
        monkeypatch.setattr(channelwise, "LRP_BAND_ROWS", band_rows)
        in_bands = net._with_residual_prediction(hyper, decoded)  # GEMM sizes differ: last-bit changes only
        torch.testing.assert_close(in_bands, whole, rtol=1e-6, atol=1e-5, msg=f"bands of {band_rows} rows")


def test_encoding_and_decoding_do_not_depend_on_the_thread_count(tiny_weights):
    array = natural_image(96, 128)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data_1 = codec.encode(array, model=MODEL)
        torch.set_num_threads(2)
        data_2 = codec.encode(array, model=MODEL)
        decoded_2 = np.asarray(codec.decode(data_1))
        torch.set_num_threads(1)
        decoded_1 = np.asarray(codec.decode(data_2))
    finally:
        torch.set_num_threads(before)
    assert data_1 == data_2
    np.testing.assert_array_equal(decoded_1, decoded_2)


@pytest.mark.parametrize(
    ("parent", "taken"),
    [
        ("bmshj2018-hyperprior", ["entropy_bottleneck", "g_a", "g_s", "gaussian_conditional", "h_a"]),
        ("mbt2018-mean", ["entropy_bottleneck", "g_a", "g_s", "gaussian_conditional", "h_a", "h_s"]),
    ],
)
def test_training_starts_from_a_parent_model_and_exports_a_model_that_codes(
    tmp_path, monkeypatch, tiny_weights_dir, parent, taken
):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    init = tiny_weights_dir / f"{parent}-lambda0.004.safetensors"
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
            f"--init={init}",
        ]
    )
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path / "export"))
    point = api.select_rate_point(MODEL, 50)
    assert point.card["training"]["initialized_from"]["partial"] == taken
    assert codec.decode(codec.encode(synthetic_image(40, 50), model=MODEL)).size == (50, 40)


@pytest.mark.parametrize(("float_copies", "message"), [(True, "lacks the integer networks"), (False, "does not fit")])
def test_weights_without_integer_networks_are_a_clear_weights_error(
    tiny_weights_dir, tmp_path, monkeypatch, float_copies, message
):
    """Weights from before the integer networks (float copies only), and a file missing both."""
    point = weights.rate_points(MODEL, tiny_weights_dir)[0]
    state = load_file(point.weights_path)
    state = with_float_copies(state) if float_copies else state
    state = {k: v for k, v in state.items() if not k.startswith("entropy_parameters_integer")}
    save_file(state, tmp_path / point.weights_path.name)
    card = {**point.card, "sha256": weights.sha256_of(tmp_path / point.weights_path.name)}
    (tmp_path / point.card_path.name).write_text(json.dumps(card))
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsError, match=message):
        codec.encode(natural_image(32, 32), model=MODEL)
