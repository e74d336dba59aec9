"""Files written by earlier aecodec versions keep decoding with the current code."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec import container, weights
from codec.errors import WeightsError
from codec.models import ARCHITECTURES
from tests.conftest import natural_image

DATA = Path(__file__).resolve().parent / "data"
V1_FILES = sorted((DATA / "v1").glob("*.aec"))
RELEASE_0_3_4_FILES = sorted((DATA / "release-0.3.4").glob("*.aec"))
PROFILE_FILE = DATA / "release-0.5.3" / "channelwise-profile.aec"
METADATA_FILE = DATA / "release-0.6.0" / "hyperprior-metadata.aec"
RELEASE_0_7_1_FILES = sorted((DATA / "release-0.7.1").glob("*.aec"))


def assert_decodes_to_its_recorded_image(path: Path) -> None:
    """The .aec file at `path` decodes to the .png beside it, within one level (cross-CPU rounding)."""
    decoded = np.asarray(codec.decode(path.read_bytes()), dtype=np.int16)
    expected = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.int16)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).max() <= 1


def superseded_fingerprint(release: str, card: str, length: int) -> bytes:
    """The first `length` bytes of the SHA-256 of weights that `release` shipped and a later one superseded."""
    path = weights.DEFAULT_WEIGHTS_DIR / weights.SUPERSEDED / release / card
    return bytes.fromhex(json.loads(path.read_text())["sha256"])[:length]


def test_there_are_version_1_files_and_0_3_4_files():
    assert len(V1_FILES) == 4
    assert len(RELEASE_0_3_4_FILES) == 2


@pytest.mark.parametrize("path", V1_FILES, ids=lambda p: p.stem)
def test_version_1_files_decode_to_their_recorded_images(path, monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(DATA / "v1" / "weights"))
    data = path.read_bytes()
    assert data[4] == 1
    decoded = np.asarray(codec.decode(data), dtype=np.int16)
    expected = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.int16)
    assert decoded.shape == expected.shape
    # Entropy decoding is exact; the transforms may round differently on another CPU.
    assert np.abs(decoded - expected).max() <= 1


def test_version_1_headers_read_as_recorded(monkeypatch):
    header, streams = container.unpack((DATA / "v1" / "hyperprior-range-gray.aec").read_bytes())
    assert (header.model, header.coder, header.mode, header.height, header.width) == (
        "bmshj2018-hyperprior",
        "range",
        "L",
        33,
        17,
    )
    assert len(streams) == 2


@pytest.mark.parametrize("path", RELEASE_0_3_4_FILES, ids=lambda p: p.stem)
def test_files_of_the_0_3_4_default_model_decode_with_its_superseded_weights(path, monkeypatch):
    monkeypatch.delenv("AECODEC_WEIGHTS", raising=False)
    header = codec.read_header(path.read_bytes())
    card = "minnen2020-channelwise-variable-rate.json"
    assert header.fingerprint == superseded_fingerprint("0.3.4", card, len(header.fingerprint))
    assert_decodes_to_its_recorded_image(path)


def test_a_0_5_3_file_with_an_icc_profile_decodes_to_its_recorded_image_and_profile(monkeypatch):
    monkeypatch.delenv("AECODEC_WEIGHTS", raising=False)
    data = PROFILE_FILE.read_bytes()
    assert data[5] == 1  # flags: a profile follows the stream table
    decoded = codec.decode(data)
    expected = Image.open(PROFILE_FILE.with_suffix(".png"))
    assert decoded.info["icc_profile"] == expected.info["icc_profile"]
    assert np.abs(np.asarray(decoded, dtype=np.int16) - np.asarray(expected, dtype=np.int16)).max() <= 1


def test_a_0_6_0_file_with_a_profile_exif_and_xmp_decodes_to_its_recorded_image_and_metadata(monkeypatch):
    monkeypatch.delenv("AECODEC_WEIGHTS", raising=False)
    data = METADATA_FILE.read_bytes()
    assert data[5] == 0b111  # flags: a profile, EXIF and XMP follow the stream table
    decoded = codec.decode(data)
    assert decoded.info["icc_profile"] == METADATA_FILE.with_suffix(".icc").read_bytes()
    assert decoded.info["exif"] == b"Exif\x00\x00" + METADATA_FILE.with_suffix(".exif").read_bytes()
    assert decoded.info["xmp"] == METADATA_FILE.with_suffix(".xmp").read_bytes()
    expected = np.asarray(Image.open(METADATA_FILE.with_suffix(".png")), dtype=np.int16)
    assert np.abs(np.asarray(decoded, dtype=np.int16) - expected).max() <= 1


def test_there_are_0_7_1_files_of_both_n128_models():
    assert [p.stem for p in RELEASE_0_7_1_FILES] == ["channelwise-default", "hyperprior-q30"]


@pytest.mark.parametrize("path", RELEASE_0_7_1_FILES, ids=lambda p: p.stem)
def test_files_of_the_0_7_1_n128_models_decode_to_their_recorded_images(path, monkeypatch):
    monkeypatch.delenv("AECODEC_WEIGHTS", raising=False)
    assert_decodes_to_its_recorded_image(path)


def test_the_0_7_1_default_model_file_names_the_weights_0_7_2_superseded():
    header = codec.read_header((DATA / "release-0.7.1" / "channelwise-default.aec").read_bytes())
    card = "minnen2020-channelwise-variable-rate.json"
    assert header.fingerprint == superseded_fingerprint("0.7.1", card, len(header.fingerprint))


def test_files_made_with_superseded_weights_still_decode(tmp_path, monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path))
    image = natural_image(48, 64)
    torch.manual_seed(0)
    old_card = weights.export(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), 0.01, tmp_path, {"training": {}})
    weights._scan.cache_clear()
    old_file = codec.encode(image, model="bmshj2018-hyperprior")
    old_decoded = np.asarray(codec.decode(old_file))

    superseded = tmp_path / weights.SUPERSEDED / "0.0.1"
    superseded.mkdir(parents=True)
    for path in (old_card, old_card.with_suffix(".safetensors")):
        path.rename(superseded / path.name)
    torch.manual_seed(1)
    weights.export(ARCHITECTURES["bmshj2018-hyperprior"](8, 12), 0.01, tmp_path, {"training": {}})
    weights._scan.cache_clear()

    assert np.array_equal(np.asarray(codec.decode(old_file)), old_decoded)
    new_header = codec.read_header(codec.encode(image, model="bmshj2018-hyperprior"))
    assert new_header.fingerprint != codec.read_header(old_file).fingerprint

    for path in superseded.iterdir():
        path.unlink()
    weights._scan.cache_clear()
    with pytest.raises(WeightsError, match="not installed"):
        codec.decode(old_file)
