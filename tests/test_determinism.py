"""Entropy parameters that do not depend on threads, batching, image size or summation order;
tiled transforms that match whole-image ones."""

import copy

import numpy as np
import pytest
import torch

import codec
from codec import api, integer, tiling, weights
from codec.image import pad
from codec.integer import FRACTION_BITS
from codec.models import ARCHITECTURES, PAD_MULTIPLE
from tests.conftest import natural_image

SHIPPED = weights.DEFAULT_WEIGHTS_DIR
HYPERPRIOR = "bmshj2018-hyperprior"


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(SHIPPED))


@pytest.fixture
def threads():
    """Set torch's thread count inside a test and restore it afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def shipped_hyperprior():
    return weights.load(api.select_rate_point(HYPERPRIOR, 75))


def hyper_latent(net, image: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        y = tiling.analysis(net.g_a, pad(image, PAD_MULTIPLE))
        return torch.round(net.h_a(y.abs()) - net._z_medians())


@pytest.mark.parametrize("model", [HYPERPRIOR, "minnen2020-channelwise"])
def test_shipped_models_with_a_hyperprior_code_with_integer_networks(shipped, model):
    points = weights.rate_points(model)
    assert points
    for point in points:
        assert weights.load(point).integer_networks_ready(), point.weights_path.name


@pytest.mark.parametrize("model", [HYPERPRIOR, "minnen2020-channelwise"])
def test_encode_with_one_thread_decode_with_two_and_the_reverse_give_the_same_image(shipped, threads, model):
    image = natural_image(200, 260)
    files, decoded = {}, {}
    for encode_threads, decode_threads in ((1, 2), (2, 1)):
        threads(encode_threads)
        files[encode_threads] = codec.encode(image, quality=75, model=model)
        threads(decode_threads)
        decoded[encode_threads] = np.asarray(codec.decode(files[encode_threads]))
    threads(2)
    assert np.array_equal(decoded[1], np.asarray(codec.decode(files[1])))
    threads(1)
    assert np.array_equal(decoded[2], np.asarray(codec.decode(files[2])))
    if files[1] == files[2]:
        assert np.array_equal(decoded[1], decoded[2])


def test_integer_indexes_are_identical_for_one_and_two_threads(shipped, threads):
    net = shipped_hyperprior()
    z = hyper_latent(net, natural_image(256, 320))
    threads(1)
    one = net.h_s_integer.indexes(z)
    threads(2)
    two = net.h_s_integer.indexes(z)
    assert torch.equal(one, two)


def test_integer_indexes_are_identical_across_batch_sizes(shipped):
    net = shipped_hyperprior()
    z = torch.cat([hyper_latent(net, natural_image(128, 192)), hyper_latent(net, 255 - natural_image(128, 192))])
    together = net.h_s_integer.indexes(z)
    alone = torch.cat([net.h_s_integer.indexes(z[i : i + 1]) for i in range(2)])
    assert torch.equal(together, alone)


def test_integer_indexes_are_identical_inside_a_larger_image(shipped):
    net = shipped_hyperprior()
    large = hyper_latent(net, natural_image(640, 640))  # 10 × 10 hyper-latent
    small = large[:, :, 1:9, 1:9]
    # y elements whose receptive field in z lies inside `small` (under two hyper-latents around them)
    inner_large = net.h_s_integer.indexes(large)[:, :, 12:28, 12:28]
    inner_small = net.h_s_integer.indexes(small)[:, :, 8:24, 8:24]
    assert torch.equal(inner_large, inner_small)


def test_integer_scales_do_not_depend_on_the_order_of_summation(shipped):
    """Permuting the input channels changes every accumulation order; the exact result must not change."""
    net = shipped_hyperprior()
    z = hyper_latent(net, natural_image(256, 256))
    permutation = torch.randperm(z.shape[1], generator=torch.Generator().manual_seed(0))
    permuted = copy.deepcopy(net.h_s_integer)
    permuted.weight0 = net.h_s_integer.weight0[permutation]  # ConvTranspose2d weights are (in, out, k, k)
    permuted.input_offset = net.h_s_integer.input_offset[permutation]
    assert torch.equal(net.h_s_integer(z), permuted(z[:, permutation]))


def test_layers_summing_many_products_keep_exact_sums_with_fewer_weight_bits():
    assert integer.layer_weight_bits(64 * 25) == integer.WEIGHT_BITS  # the shipped layers: unchanged
    assert integer.layer_weight_bits(4095) == integer.WEIGHT_BITS
    assert integer.layer_weight_bits(4096) == integer.WEIGHT_BITS - 1
    with pytest.raises(ValueError, match="fan-in"):
        integer.layer_weight_bits(1 << 20)
    # a stride-2 5×5 transposed convolution sums 3×3 taps per output: an M=192 h_s layer keeps 13 bits
    assert integer.products_per_output(torch.nn.ConvTranspose2d(192, 288, 5, 2, 2, 1)) == 192 * 9
    assert integer.products_per_output(torch.nn.Conv2d(192, 8, 5, 1, 2)) == 192 * 25

    torch.manual_seed(0)
    wide = integer.IntegerSynthesis.quantize(torch.nn.Sequential(torch.nn.Conv2d(192, 8, 5, 1, 2)))
    assert wide.weight0.abs().max() <= 2 ** (integer.WEIGHT_BITS - 2)  # 12 bits, sign included
    # so |sum| ≤ 4800 · 2^11 · 2^28 < 2^52: exact in float64 in any order


def test_a_layer_with_tiny_weights_and_a_large_bias_keeps_its_integers_within_exact_range():
    layer = torch.nn.Conv2d(4, 2, 3, 1, 1)
    with torch.no_grad():
        layer.weight.fill_(0.0)
        layer.bias.fill_(100.0)
    net = integer.IntegerSynthesis.quantize(torch.nn.Sequential(layer))
    assert net.bias0.abs().max() < 2**50
    out = net.run(torch.zeros(1, 4, 3, 3))
    assert torch.equal(out, torch.full_like(out, 100.0 * 2**FRACTION_BITS))


def test_integer_network_follows_the_float_network_closely(shipped):
    net = shipped_hyperprior()
    z = hyper_latent(net, natural_image(256, 256))
    with torch.no_grad():
        float_scales = net.h_s(z + net._z_medians()).double()
    integer_scales = net.h_s_integer(z) / 2.0**FRACTION_BITS
    assert (integer_scales - float_scales).abs().max() < 0.01 * float_scales.abs().max()
    float_indexes = net.gaussian_conditional.build_indexes(float_scales.float())
    assert (net.h_s_integer.indexes(z) - float_indexes).abs().max() <= 1
    assert (net.h_s_integer.indexes(z) != float_indexes).float().mean() < 0.02


def test_integer_network_tolerates_absurd_hyper_latents(shipped):
    net = shipped_hyperprior()
    z = torch.full((1, net.N, 2, 2), 2.0**31)
    z[:, ::2] = -(2.0**31)
    indexes = net.h_s_integer.indexes(z)
    assert indexes.min() >= 0 and indexes.max() < net.gaussian_conditional.scale_table.numel()


def test_integer_network_gives_the_same_integers_in_row_bands_as_in_one_piece(shipped, monkeypatch):
    net = shipped_hyperprior()
    z = torch.randint(-8, 9, (1, net.N, 23, 9)).float()
    whole = net.h_s_integer(z)
    monkeypatch.setattr(integer, "BAND_ROWS", 3)
    assert torch.equal(net.h_s_integer(z), whole)


@pytest.mark.parametrize("tile", [64, 128])
def test_tiled_analysis_equals_whole_image_analysis(tiny_weights, tile):
    net = weights.load(api.select_rate_point(HYPERPRIOR, 75))
    image = pad(natural_image(200, 260), PAD_MULTIPLE)
    whole = tiling.analysis(net.g_a, image, tile=4096)
    torch.testing.assert_close(tiling.analysis(net.g_a, image, tile=tile), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tile", [64, 128])
def test_tiled_synthesis_matches_whole_image_synthesis(tiny_weights, tile):
    net = weights.load(api.select_rate_point(HYPERPRIOR, 75))
    y_hat = torch.round(tiling.analysis(net.g_a, pad(natural_image(200, 260), PAD_MULTIPLE)) * 3)
    whole = tiling.synthesis(net.g_s, y_hat, 200, 260, tile=4096).astype(int)
    tiled = tiling.synthesis(net.g_s, y_hat, 200, 260, tile=tile).astype(int)
    assert np.abs(whole - tiled).max() <= 1 and (whole != tiled).mean() < 1e-3


def test_a_file_encoded_in_small_tiles_decodes_in_large_ones(tiny_weights):
    image = natural_image(150, 230)
    small = np.asarray(codec.decode(codec.encode(image, tile=64), tile=64)).astype(int)
    large = np.asarray(codec.decode(codec.encode(image, tile=64))).astype(int)
    assert small.shape == image.shape and np.abs(small - large).max() <= 1


def test_cross_device_check_finds_every_file_decoding_identically_on_cpu_and_cpu(tiny_weights, tmp_path):
    import json

    from PIL import Image

    from benchmarks import cross_device

    for i in range(2):
        Image.fromarray(natural_image(64, 96)[:, :: 1 - 2 * i]).save(tmp_path / f"kodim0{i + 1}.png")
    with pytest.raises(SystemExit) as exit_:
        cross_device.main(["--data", str(tmp_path), "--devices", "cpu,cpu", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 0
    report = json.loads((tmp_path / "out" / "cross-device.json").read_text())
    assert report["images"] == 2 and set(report["models"]) == set(ARCHITECTURES)
    for result in report["models"].values():
        assert result["files"] == result["decoded_everywhere"] == 4 and not result["errors"]
        assert result["files_identical_across_encoders"] == 2 and result["max_pixel_difference"] == 0
