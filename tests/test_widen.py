"""train.widen: more latent channels or wider hidden layers, the same codec until training uses them."""

import json

import pytest
import torch
from PIL import Image

from codec import weights
from codec.models import ARCHITECTURES
from tests.conftest import synthetic_image
from train.train import main
from train.widen import widen, widen_file


def _image() -> torch.Tensor:
    return torch.from_numpy(synthetic_image(64, 64, seed=3)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize(
    ("arch", "lambdas", "synthesis_scale", "M", "N"),
    [
        ("bmshj2018-factorized", (), 0.01, 24, None),
        ("bmshj2018-hyperprior", (), 0.01, 24, None),
        ("bmshj2018-hyperprior", (0.0018, 0.18), 0.01, 24, None),
        ("bmshj2018-hyperprior", (), 1.0, 24, None),
        ("minnen2020-channelwise", (0.0018, 0.18), 0.01, 24, None),
        ("minnen2020-channelwise", (0.0018, 0.18), 1.0, 24, None),
        ("bmshj2018-factorized", (), 0.01, None, 16),
        ("bmshj2018-hyperprior", (), 0.01, None, 16),
        ("minnen2020-channelwise", (0.0018, 0.18), 0.01, None, 16),
        ("bmshj2018-hyperprior", (0.0018, 0.18), 1.0, 24, 16),
        ("minnen2020-channelwise", (0.0018, 0.18), 1.0, 24, 16),
    ],
)
def test_a_widened_model_codes_the_same_reconstruction_in_about_the_same_bytes(arch, lambdas, synthesis_scale, M, N):
    torch.manual_seed(0)
    narrow = ARCHITECTURES[arch](8, 12, lambdas).eval()
    wide = widen(narrow, M, N=N, synthesis_scale=synthesis_scale)
    assert (wide.M, wide.N) == (M or 12, N or 8)
    lmbda = lambdas[-1] if lambdas else None
    x = _image()
    for model in (narrow, wide):
        model.update_tables()
    narrow_streams = narrow.compress(x, lmbda=lmbda)
    wide_streams = wide.compress(x, lmbda=lmbda)
    torch.testing.assert_close(
        wide.decompress(wide_streams, 64, 64, lmbda=lmbda),
        narrow.decompress(narrow_streams, 64, 64, lmbda=lmbda),
        rtol=0,
        atol=1e-5,
    )
    assert sum(map(len, wide_streams)) <= sum(map(len, narrow_streams)) + 2


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "bmshj2018-hyperprior", "minnen2020-channelwise"])
def test_the_distortion_gradient_reaches_the_new_channels(arch):
    torch.manual_seed(0)
    wide = widen(ARCHITECTURES[arch](8, 12), 24).train()
    torch.mean((wide(_image())["x_hat"] - _image()) ** 2).backward()
    new = slice(12, 24) if arch != "minnen2020-channelwise" else [c for c in range(24) if c % 6 >= 3]
    reached = wide.g_s[0].weight.grad[new].abs().sum() + wide.g_a[-1].weight.grad[new].abs().sum()
    assert reached > 0


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "bmshj2018-hyperprior", "minnen2020-channelwise"])
def test_the_training_loss_gradient_reaches_the_weights_from_new_hidden_units_and_z_channels(arch):
    torch.manual_seed(0)
    wide = widen(ARCHITECTURES[arch](8, 12), N=16).train()
    out = wide(_image())
    rate = sum(likelihoods.log2().sum() for likelihoods in out["likelihoods"].values())
    (torch.mean((out["x_hat"] - _image()) ** 2) - 1e-3 * rate).backward()
    for layer in (2, 4, 6):  # transposed convolutions: weights are (in, out, k, k)
        assert wide.g_s[layer].weight.grad[8:].abs().sum() > 0
    for layer in (2, 4, 6):
        assert wide.g_a[layer].weight.grad[:, 8:].abs().sum() > 0
    if arch != "bmshj2018-factorized":  # z has N channels: h_s's weights from the new ones
        assert wide.h_s[0].weight.grad[8:].abs().sum() > 0


def test_new_hidden_units_leave_gdn_normalizing_the_old_ones_as_before():
    narrow = ARCHITECTURES["bmshj2018-hyperprior"](8, 12)
    wide = widen(narrow, N=16)
    for layer in (1, 3, 5):
        gamma = wide.g_a[layer].gamma_reparam(wide.g_a[layer].gamma)
        assert torch.all(gamma[:8, 8:] == 0)
        torch.testing.assert_close(gamma[:8, :8], narrow.g_a[layer].gamma_reparam(narrow.g_a[layer].gamma))


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "minnen2020-channelwise"])
def test_synthesis_scale_sets_the_weights_from_the_new_channels(arch):
    narrow = ARCHITECTURES[arch](8, 12)
    new = slice(12, 24) if arch != "minnen2020-channelwise" else [c for c in range(24) if c % 6 >= 3]
    quiet, awake = (widen(narrow, 24, synthesis_scale=scale).g_s[0].weight[new] for scale in (0.01, 1.0))
    assert awake.abs().sum() > 0
    torch.testing.assert_close(awake * 0.01, quiet)


def test_the_factorized_model_takes_no_synthesis_scale_and_keeps_zero_weights():
    narrow = ARCHITECTURES["bmshj2018-factorized"](8, 12)
    assert torch.all(widen(narrow, 24).g_s[0].weight[12:] == 0)
    with pytest.raises(ValueError, match="no synthesis_scale"):
        widen(narrow, 24, synthesis_scale=1.0)


def test_widening_refuses_other_models_and_fewer_channels():
    with pytest.raises(ValueError, match="not supported"):
        widen(ARCHITECTURES["mbt2018-mean"](8, 12), 24)
    with pytest.raises(ValueError, match="slices"):
        widen(ARCHITECTURES["minnen2020-channelwise"](8, 12), 22)
    with pytest.raises(ValueError, match="not larger"):
        widen(ARCHITECTURES["bmshj2018-factorized"](8, 12), 8)
    with pytest.raises(ValueError, match="not larger"):
        widen(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), 12)
    with pytest.raises(ValueError, match="not larger"):
        widen(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), 24, N=4)
    with pytest.raises(ValueError, match="positive"):
        widen(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), 24, synthesis_scale=0.0)


def test_widened_weights_carry_their_origin_and_start_a_wider_training_run(tmp_path):
    model = ARCHITECTURES["bmshj2018-factorized"](8, 12)
    shipped = weights.export(model, 0.01, tmp_path / "shipped", {"training": {"steps": 7}})
    card_path = widen_file(shipped.with_suffix(".safetensors"), tmp_path / "wide", M=20, N=12)
    card = json.loads(card_path.read_text())
    assert (card["N"], card["M"], card["lambda"]) == (12, 20, 0.01)
    assert "N from 8 to 12 and M from 12 to 20" in card["training"]["note"]
    assert card["training"]["widened_from"]["sha256"] == json.loads(shipped.read_text())["sha256"]

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(synthetic_image(64, 64, seed=i)).save(data / f"{i}.png")
    main(
        [
            "--arch=bmshj2018-factorized", "--N=12", "--M=20", "--crop=64", "--batch=2", "--lmbda=0.01", "--steps=2",
            f"--data={data}", f"--init={card_path.with_suffix('.safetensors')}", f"--out_dir={tmp_path / 'run'}",
            f"--export_dir={tmp_path / 'export'}",
        ]
    )  # fmt: skip
    (exported,) = (tmp_path / "export").glob("*.json")
    trained = json.loads(exported.read_text())
    assert (trained["N"], trained["M"]) == (12, 20)
    assert trained["training"]["initialized_from"]["sha256"] == card["sha256"]
    assert trained["training"]["total_steps"] == 7 + 2  # the narrow model's steps count on


def test_widening_twice_silences_the_second_new_channels_as_much_as_the_first():
    torch.manual_seed(0)
    once = widen(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), N=16)
    twice = widen(once, N=24)
    quantiles = twice.entropy_bottleneck.quantiles[:, 0]
    spread = quantiles[:, 2] - quantiles[:, 0]
    torch.testing.assert_close(spread[16:].min(), spread[8:16].min(), rtol=0.5, atol=0)
