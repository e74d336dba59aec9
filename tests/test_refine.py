"""Encoder-side latent refinement: ordinary files, a lower loss, never worse, clear refusals."""

import numpy as np
import pytest
import torch
from compressai.ops import quantize_ste
from PIL import Image

from codec import api, cli, container, refine, weights
from codec.errors import UnsupportedImageError
from codec.image import pad
from codec.models import ARCHITECTURES, PAD_MULTIPLE
from tests.conftest import natural_image, synthetic_image
from tests.test_cli import aecodec
from tests.test_shipped import SHIPPED

QUALITY = 85  # λ ≈ 0.09: refinement gains most at high rates


def loss_of(data: bytes, reference: np.ndarray) -> float:
    """J = λ·255²·MSE + bpp of a file, from its bytes and its decoded 8-bit image."""
    header = api.read_header(data)
    decoded = np.asarray(api.decode(data).convert("RGB"))
    mse = np.mean((decoded.astype(np.float64) / 255 - reference / 255) ** 2)
    return header.rate * 255**2 * mse + len(data) * 8 / (header.width * header.height)


@pytest.fixture
def shipped_default(monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(SHIPPED))


def test_rate_estimate_of_a_refined_latent_matches_the_coded_streams(shipped_default):
    image = natural_image(128, 192)
    point = api.select_rate_point(api.DEFAULT_MODEL, QUALITY)
    net, rate = weights.load(point), api.rate_for_quality(api.DEFAULT_MODEL, QUALITY)
    padded = pad(image, PAD_MULTIPLE)
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = refine.refine(net, net.gained(net.g_a(x), rate), padded, *image.shape[:2], rate, steps=5)
        out = net.forward_latent(y, rate, rounding=quantize_ste)
        estimate = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    coded = 8 * sum(len(stream) for stream in net.compress_latent(y))
    assert abs(coded - estimate) / coded < 0.03


def test_refined_file_decodes_with_the_unchanged_decoder_at_a_lower_loss(shipped_default):
    image = natural_image(128, 192)
    plain = api.encode(image, quality=QUALITY)
    refined = api.encode(image, quality=QUALITY, refine_steps=15)
    assert refined != plain
    assert api.read_header(refined) == api.read_header(plain)
    assert loss_of(refined, image) < 0.99 * loss_of(plain, image)


def test_relaxed_rounding_stays_between_floor_and_ceiling_and_hardens_as_it_cools():
    values = torch.linspace(-3, 3, 1001)
    generator = torch.Generator().manual_seed(0)
    hot = refine.gumbel_rounding(refine.TEMPERATURE_START, generator)(values)
    assert torch.all(hot >= torch.floor(values)) and torch.all(hot <= torch.floor(values) + 1)
    assert (hot - torch.round(values)).abs().max() > 0.2  # hot: far from rounding somewhere
    clear = (values - torch.floor(values) - 0.5).abs() > 0.1  # not within 0.1 of a rounding boundary
    cold = refine.gumbel_rounding(0.01, generator)(values)
    assert torch.allclose(cold[clear], torch.round(values[clear]), atol=1e-3)


def test_relaxed_rounding_passes_gradients_to_the_latent():
    values = torch.tensor([0.2, 0.5, 1.7], requires_grad=True)
    refine.gumbel_rounding(0.5, torch.Generator().manual_seed(0))(values).sum().backward()
    assert values.grad is not None and torch.all(values.grad != 0)


def test_refined_encoding_is_repeatable(shipped_default):
    image = natural_image(64, 128)
    assert api.encode(image, quality=QUALITY, refine_steps=4) == api.encode(image, quality=QUALITY, refine_steps=4)


def test_gray_image_distortion_is_that_of_the_luma_the_decoder_outputs():
    gray = torch.full((1, 3, 4, 4), 0.5)
    tinted = gray + torch.tensor([0.114, 0.0, -0.299]).view(1, 3, 1, 1)  # the same luma, another colour
    assert refine.distortion(tinted, gray, "L") < 1e-12 < refine.distortion(tinted, gray, "RGB")


def test_distortion_is_that_of_the_clipped_pixels_the_decoder_outputs():
    white = torch.ones(1, 3, 4, 4)
    assert refine.distortion(white + 0.3, white, "RGB") == 0 == refine.distortion(white + 0.3, white, "L")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_distortion_gradient_in_tiles_is_that_of_the_whole_image(mode):
    torch.manual_seed(0)
    g_s = ARCHITECTURES["bmshj2018-hyperprior"](8, 12).g_s.double()
    y_hat = torch.randn(1, 12, 6, 11, dtype=torch.float64)  # 96×176 pixels; the image is 90×150
    image = torch.from_numpy(natural_image(90, 150)).permute(2, 0, 1)[None].double() / 255
    whole = y_hat.clone().requires_grad_(True)
    expected = refine.distortion(g_s(whole)[..., :90, :150], image, mode)
    (expected_gradient,) = torch.autograd.grad(expected, [whole])
    value, gradient = refine.distortion_gradient(g_s, y_hat, image, mode, tile=32)  # 3×5 tiles, edges cut
    assert torch.allclose(value, expected, rtol=1e-12)
    assert torch.allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-15)


def test_refinement_in_tiles_takes_the_steps_it_takes_in_one_piece(tiny_weights):
    image = synthetic_image(100, 150)
    point = api.select_rate_point(api.DEFAULT_MODEL, 70)
    net, rate = weights.load(point), api.rate_for_quality(api.DEFAULT_MODEL, 70)
    padded = pad(image, PAD_MULTIPLE)
    y = net.gained(net.g_a(torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255), rate)
    tiled = refine.refine(net, y, padded, 100, 150, rate, steps=3, tile=64)  # 2×3 tiles
    whole = refine.refine(net, y, padded, 100, 150, rate, steps=3)
    assert not torch.equal(tiled, y)
    assert torch.allclose(tiled, whole, atol=1e-4)


def test_refined_gray_file_decodes_to_gray_at_a_lower_loss(shipped_default):
    gray = natural_image(128, 192)[..., 1]
    plain, refined = (api.encode(gray, quality=QUALITY, refine_steps=steps) for steps in (0, 15))
    losses = []
    for data in (plain, refined):
        decoded = api.decode(data)
        assert decoded.mode == "L"
        mse = np.mean((np.asarray(decoded, dtype=np.float64) - gray) ** 2) / 255**2
        losses.append(api.read_header(data).rate * 255**2 * mse + len(data) * 8 / gray.size)
    assert losses[1] < 0.99 * losses[0]


def test_encoder_keeps_the_plain_file_when_the_refined_one_codes_worse(shipped_default, monkeypatch):
    image = natural_image(64, 64)
    monkeypatch.setattr(refine, "learning_rate", lambda lmbda: 1000.0)  # every step lands far off
    assert api.encode(image, quality=QUALITY, refine_steps=3) == api.encode(image, quality=QUALITY)


@pytest.mark.parametrize("model", sorted(ARCHITECTURES))
def test_every_architecture_refines_into_a_decodable_file_no_worse_than_plain(tiny_weights, model):
    image = synthetic_image(40, 72)
    data = api.encode(image, quality=70, model=model, refine_steps=3)
    assert np.asarray(api.decode(data)).shape == image.shape
    assert loss_of(data, image) <= loss_of(api.encode(image, quality=70, model=model), image)


def test_refinement_refuses_bad_step_counts_and_images_too_large_to_hold(tiny_weights, monkeypatch):
    image = synthetic_image(40, 72)
    with pytest.raises(ValueError, match="between 0 and"):
        api.encode(image, refine_steps=-1)
    monkeypatch.setattr(refine, "MAX_PIXELS", 64 * 64)
    with pytest.raises(UnsupportedImageError, match="without refinement"):
        api.encode(image, refine_steps=2)
    container.unpack(api.encode(image))  # without refinement the same image codes


def test_cli_refine_flag_codes_and_refuses_negative_steps(tiny_weights_dir, tmp_path):
    png, aec, out = tmp_path / "in.png", tmp_path / "x.aec", tmp_path / "out.png"
    Image.fromarray(synthetic_image(45, 70)).save(png)
    result = aecodec("encode", str(png), str(aec), "--refine", "2", env_weights=tiny_weights_dir)
    assert result.returncode == 0, result.stderr
    assert aecodec("decode", str(aec), str(out), env_weights=tiny_weights_dir).returncode == 0
    bad = aecodec("encode", str(png), str(tmp_path / "y.aec"), "--refine", "-1", env_weights=tiny_weights_dir)
    assert bad.returncode == 2 and b"--refine must be between" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "y.aec").exists()


def test_cli_refusing_an_image_too_large_to_refine_is_one_line_and_leaves_no_file(
    tiny_weights, tmp_path, monkeypatch, capsys
):
    png, aec = tmp_path / "in.png", tmp_path / "x.aec"
    Image.fromarray(synthetic_image(45, 70)).save(png)
    monkeypatch.setattr(refine, "MAX_PIXELS", 64 * 64)
    assert cli.main(["encode", str(png), str(aec), "--refine", "2"]) == 1
    error = capsys.readouterr().err
    assert "without refinement" in error and len(error.splitlines()) == 1
    assert not aec.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_reduced_refinement_benchmark_never_reports_a_worse_file_and_resumes(shipped_default, tmp_path, monkeypatch):
    from benchmarks import refine as bench

    paths = []
    for i, (top, left) in enumerate(((0, 0), (40, 60))):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(natural_image(64 + top, 96 + left)[top:, left:]).save(paths[-1])
    partial = tmp_path / "refine.partial.jsonl"
    result = bench.measure(api.DEFAULT_MODEL, paths, [0.0067, 0.0932], steps=3, partial=partial)
    for entry in result["per_lambda"]:
        assert entry["refined"]["J"] <= entry["plain"]["J"] and entry["plain"]["bpp"] > 0
    assert len(partial.read_text().splitlines()) == 4
    monkeypatch.setattr(bench, "code", lambda *args: pytest.fail("a finished row was coded again"))
    assert (
        bench.measure(api.DEFAULT_MODEL, paths, [0.0067, 0.0932], steps=3, partial=partial)["per_lambda"]
        == (result["per_lambda"])
    )
