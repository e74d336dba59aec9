"""Files written by earlier aecodec versions keep decoding with the current code."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec import container

DATA = Path(__file__).resolve().parent / "data"
V1_FILES = sorted((DATA / "v1").glob("*.aec"))


def test_there_are_version_1_files():
    assert len(V1_FILES) == 4


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
