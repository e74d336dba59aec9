"""Shared fixtures: tiny exported models, so format and CLI tests run in seconds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import compressai  # noqa: F401

from codec import weights
from codec.models import ARCHITECTURES

TINY_LAMBDAS = (0.004, 0.03)


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """Untrained N=8, M=12 models of every architecture at two λ, exported with CDF tables."""
    directory = tmp_path_factory.mktemp("weights")
    for arch in ARCHITECTURES.values():
        for i, lmbda in enumerate(TINY_LAMBDAS):
            torch.manual_seed(i)
            weights.export(arch(8, 12), lmbda, directory, {"training": {"note": "untrained test model"}})
    return directory


@pytest.fixture
def tiny_weights(tiny_weights_dir, monkeypatch) -> Path:
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))
    return tiny_weights_dir


def natural_image(height: int = 96, width: int = 128) -> np.ndarray:
    """A crop of the bundled sample photo."""
    from PIL import Image

    with Image.open(Path(__file__).resolve().parent.parent / "assets" / "sample.png") as image:
        return np.asarray(image.convert("RGB"))[100 : 100 + height, 150 : 150 + width].copy()


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mild noise, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(width, 1), yy * 255 / max(height, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _fixed(*values: float) -> bytes:
    """ICC s15Fixed16Numbers."""
    import struct

    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _icc(device_class: bytes, colour_space: bytes, description: str, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile: 128-byte header (PCS XYZ, D50), tag table, tag data."""
    import struct

    text = description.encode("ascii") + b"\0"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)),
        (b"cprt", b"text" + bytes(4) + b"public domain\0"),
        (b"wtpt", b"XYZ " + bytes(4) + _fixed(0.9642, 1.0, 0.8249)),
        *tags,
    ]
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for name, body in tags:
        body += bytes(-len(body) % 4)
        table += name + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = struct.pack(">I", offset + len(data)) + b"test" + bytes([2, 0x10, 0, 0]) + device_class
    header += colour_space + b"XYZ " + bytes(12) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4)
    header += _fixed(0.9642, 1.0, 0.8249) + bytes(4 + 16 + 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def icc_profile(description: str = "Test P3 space", gamma: float = 1.8, gray: bool = False) -> bytes:
    """A small, valid ICC v2 display profile that is not sRGB: Display P3's primaries (adapted to
    D50) with a pure power-law tone curve, or a gray one with that curve."""
    import struct

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))
    if gray:
        return _icc(b"mntr", b"GRAY", description, [(b"kTRC", curve)])
    primaries = {
        b"rXYZ": (0.5151, 0.2412, -0.0011),
        b"gXYZ": (0.2920, 0.6922, 0.0419),
        b"bXYZ": (0.1571, 0.0666, 0.7841),
    }
    tags = [(name, b"XYZ " + bytes(4) + _fixed(*xyz)) for name, xyz in primaries.items()]
    return _icc(b"mntr", b"RGB ", description, tags + [(name, curve) for name in (b"rTRC", b"gTRC", b"bTRC")])


def cmyk_icc_profile(description: str = "Test CMYK inks") -> bytes:
    """A small, valid ICC v2 output profile for CMYK: four inks that filter light multiplicatively
    (cyan passes mostly green and blue, ...), as a 2×2×2×2 lut16 table to XYZ (A2B0). Its colours
    differ far from Pillow's naive CMYK conversion (pure cyan becomes about (87, 224, 249), not
    (0, 255, 255)), so a test can tell which conversion was used."""
    import itertools
    import struct

    inks = np.array([[0.10, 0.75, 0.95], [0.90, 0.15, 0.60], [0.98, 0.90, 0.10], [0.05, 0.05, 0.05]])
    linear_srgb_to_xyz_d50 = np.array(
        [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
    )
    table = b""
    for inked in itertools.product((0, 1), repeat=4):  # the first input (cyan) varies slowest
        reflectance = np.prod([ink if on else np.ones(3) for ink, on in zip(inks, inked)], axis=0)
        xyz = linear_srgb_to_xyz_d50 @ reflectance
        table += struct.pack(">3H", *(min(65535, round(v * 32768)) for v in xyz))  # PCS XYZ: u1Fixed15
    ramp = struct.pack(">2H", 0, 65535)  # identity input and output curves, 2 entries each
    lut = b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + _fixed(1, 0, 0, 0, 1, 0, 0, 0, 1) + struct.pack(">HH", 2, 2)
    return _icc(b"prtr", b"CMYK", description, [(b"A2B0", lut + ramp * 4 + table + ramp * 3)])


XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'tiff:Orientation="6" xmp:Rating="4"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def camera_exif(orientation: int = 6, big_endian: bool = True) -> bytes:
    """TIFF-structured EXIF as a camera writes it: make, model and orientation in the first IFD,
    the capture time in the EXIF IFD and a GPS IFD (no "Exif\\0\\0" prefix)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Cam", "Model X", orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"
    exif.get_ifd(0x8825)[1] = "N"
    data = exif.tobytes().removeprefix(b"Exif\x00\x00")
    return data if big_endian else _little_endian(exif)


def _little_endian(exif: Image.Exif) -> bytes:
    exif.endian = "<"
    data = exif.tobytes().removeprefix(b"Exif\x00\x00")
    assert data[:2] == b"II"
    return data


def parsed(exif: bytes) -> Image.Exif:
    tags = Image.Exif()
    tags.load(b"Exif\x00\x00" + exif)
    return tags
