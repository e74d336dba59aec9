"""The .aec format: exact layout, and a clear FormatError for every broken file."""

import dataclasses
import struct
import zlib

import numpy as np
import pytest

import codec
from codec import container
from codec.container import Header
from codec.errors import AecError, FormatError, WeightsError
from tests.conftest import synthetic_image

HEADER = Header("bmshj2018-hyperprior", bytes(range(8)), 0.013, "range", "RGB", 70, 130, ((8, 2, 3), (12, 8, 12)))


def test_layout_matches_the_documented_offsets():
    data = container.pack(HEADER, [b"zz", b"yyy"])
    name = b"bmshj2018-hyperprior"
    assert data[:4] == b"\x89AEC" and data[4] == 2 and data[5] == 0 and data[6] == len(name)
    at = 7 + len(name)
    assert data[7:at] == name
    assert data[at : at + 8] == bytes(range(8))
    assert struct.unpack_from("<f", data, at + 8)[0] == pytest.approx(0.013)
    assert data[at + 12] == 0 and data[at + 13] == 3
    assert struct.unpack_from("<II", data, at + 14) == (70, 130)
    assert data[at + 22] == 2
    assert struct.unpack_from("<HHHI", data, at + 23) == (8, 2, 3, 2)
    assert struct.unpack_from("<HHHI", data, at + 33) == (12, 8, 12, 3)
    assert data[at + 43 : at + 48] == b"zzyyy"
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    assert len(data) == at + 48 + 4


PROFILED = dataclasses.replace(HEADER, icc_profile=b"ICC!" * 5)


def test_a_profile_follows_the_stream_table_behind_flag_bit_0():
    data = container.pack(PROFILED, [b"zz", b"yyy"])
    plain = container.pack(HEADER, [b"zz", b"yyy"])
    at = 7 + len(HEADER.model) + 43  # end of the stream table
    assert data[5] == 1 and plain[5] == 0
    assert data[:5] == plain[:5] and data[6:at] == plain[6:at]
    assert struct.unpack_from("<I", data, at)[0] == 20 and data[at + 4 : at + 24] == b"ICC!" * 5
    assert data[at + 24 : -4] == b"zzyyy"
    header, streams = container.unpack(data)
    assert header.icc_profile == b"ICC!" * 5 and streams == [b"zz", b"yyy"]


EXIF, XMP = b"MM\x00*\x00\x00\x00\x08\x00\x00", b"<x:xmpmeta/>"
FULL = dataclasses.replace(PROFILED, exif=EXIF, xmp=XMP)


def test_exif_then_xmp_follow_the_profile_behind_flag_bits_1_and_2():
    at = 7 + len(HEADER.model) + 43  # end of the stream table
    data = container.pack(FULL, [b"zz", b"yyy"])
    assert data[5] == 0b111
    assert struct.unpack_from("<I", data, at)[0] == 20 and data[at + 4 : at + 24] == b"ICC!" * 5
    at += 24
    assert struct.unpack_from("<I", data, at)[0] == len(EXIF) and data[at + 4 : at + 4 + len(EXIF)] == EXIF
    at += 4 + len(EXIF)
    assert struct.unpack_from("<I", data, at)[0] == len(XMP) and data[at + 4 : at + 4 + len(XMP)] == XMP
    assert data[at + 4 + len(XMP) : -4] == b"zzyyy"
    header, streams = container.unpack(data)
    assert (header.icc_profile, header.exif, header.xmp, streams) == (b"ICC!" * 5, EXIF, XMP, [b"zz", b"yyy"])
    for alone, flags in (
        (dataclasses.replace(HEADER, exif=EXIF), 0b010),
        (dataclasses.replace(HEADER, xmp=XMP), 0b100),
    ):
        data = container.pack(alone, [b"zz", b"yyy"])
        block = alone.exif or alone.xmp
        at = 7 + len(HEADER.model) + 43
        assert data[5] == flags and struct.unpack_from("<I", data, at)[0] == len(block)
        assert data[at + 4 : at + 4 + len(block)] == block and data[at + 4 + len(block) : -4] == b"zzyyy"
        header, streams = container.unpack(data)
        assert (header.icc_profile, header.exif, header.xmp) == (b"", alone.exif, alone.xmp)


@pytest.mark.parametrize("block", ["exif", "xmp"])
@pytest.mark.parametrize(
    ("length", "message"), [(0, "out of range"), (2**20 + 1, "out of range"), (10**6, "truncated")]
)
def test_absurd_exif_and_xmp_lengths_are_named_even_with_a_valid_crc(block, length, message):
    body = bytearray(container.pack(FULL, [b"zz", b"yyy"])[:-4])
    at = 7 + len(HEADER.model) + 43 + 24 + (0 if block == "exif" else 4 + len(EXIF))
    struct.pack_into("<I", body, at, length)
    with pytest.raises(
        FormatError, match=f"{block.upper()} length {length} out of range" if length != 10**6 else message
    ):
        container.unpack(with_valid_crc(bytes(body)))


def test_oversized_metadata_is_refused_when_packing():
    for field in ("exif", "xmp"):
        with pytest.raises(ValueError, match="too large"):
            container.pack(dataclasses.replace(HEADER, **{field: bytes(2**20 + 1)}), [b"zz", b"yyy"])


@pytest.mark.parametrize(("length", "message"), [(0, "out of range"), (2**20 + 1, "out of range"), (21, "truncated")])
def test_absurd_profile_lengths_are_named_even_with_a_valid_crc(length, message):
    body = bytearray(container.pack(PROFILED, [b"zz", b"yyy"])[:-4])
    struct.pack_into("<I", body, 7 + len(HEADER.model) + 43, length)
    with pytest.raises(FormatError, match=message):
        container.unpack(with_valid_crc(bytes(body)))


@pytest.mark.parametrize("header", [PROFILED, FULL], ids=["profile", "profile-exif-xmp"])
def test_truncation_and_corruption_of_a_file_with_metadata_are_format_errors(header):
    data = container.pack(header, [b"zz", b"yyy"])
    for length in range(len(data)):
        with pytest.raises(FormatError):
            container.unpack(data[:length])
    for position in range(len(data)):
        broken = bytearray(data)
        broken[position] ^= 0x80
        with pytest.raises(FormatError):
            container.unpack(bytes(broken))


def test_version_1_files_have_no_flags():
    body = bytearray(container.pack(dataclasses.replace(HEADER, version=1), [b"zz", b"yyy"])[:-4])
    body[5] = 1
    with pytest.raises(FormatError, match="flags"):
        container.unpack(with_valid_crc(bytes(body)))


def test_pack_unpack_round_trip():
    header, streams = container.unpack(container.pack(HEADER, [b"zz", b"yyy"]))
    assert streams == [b"zz", b"yyy"]
    assert header.model == HEADER.model and header.latent_shapes == HEADER.latent_shapes
    assert (header.height, header.width, header.mode, header.coder) == (70, 130, "RGB", "range")


def test_truncation_at_every_length_is_a_format_error():
    data = container.pack(HEADER, [b"zz", b"yyy"])
    for length in range(len(data)):
        with pytest.raises(FormatError):
            container.unpack(data[:length])


def test_trailing_bytes_are_a_format_error():
    with pytest.raises(FormatError, match="trailing"):
        container.unpack(container.pack(HEADER, [b"zz", b"yyy"]) + b"\0")


def test_every_corrupted_byte_is_a_format_error():
    data = container.pack(HEADER, [b"zz", b"yyy"])
    for position in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            broken = bytearray(data)
            broken[position] ^= flip
            with pytest.raises(FormatError):
                container.unpack(bytes(broken))


def with_valid_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def mutate(offset_from_name_end: int, fmt: str, value) -> bytes:
    """A file with one field replaced and the CRC recomputed (so the field check must catch it)."""
    body = bytearray(container.pack(HEADER, [b"zz", b"yyy"])[:-4])
    struct.pack_into(fmt, body, 7 + len(HEADER.model) + offset_from_name_end, value)
    return with_valid_crc(bytes(body))


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (8, "<f", float("nan"), "rate parameter"),
        (8, "<f", -1.0, "rate parameter"),
        (12, "<B", 7, "entropy coder"),
        (13, "<B", 4, "colour mode"),
        (14, "<I", 0, "out of range"),
        (14, "<I", 2**31, "out of range"),
        (18, "<I", 65536, "out of range"),
        (14, "<I", 60000, "exceeds the cap"),
        (22, "<B", 0, "stream count"),
        (22, "<B", 200, "stream count"),
        (23, "<H", 0, "empty latent shape"),
        (29, "<I", 2**32 - 1, "truncated"),
        (29, "<I", 1, "trailing"),
    ],
)
def test_absurd_field_values_are_named_even_with_a_valid_crc(offset, fmt, value, message):
    if message == "exceeds the cap":
        data = bytearray(mutate(offset, fmt, value)[:-4])
        struct.pack_into("<I", data, 7 + len(HEADER.model) + 18, 60000)
        data = with_valid_crc(bytes(data))
    else:
        data = mutate(offset, fmt, value)
    with pytest.raises(FormatError, match=message):
        container.unpack(data)


def test_unknown_version_magic_flags_and_name_are_named():
    data = container.pack(HEADER, [b"zz", b"yyy"])
    cases = {4: (3, "version 3"), 5: (8, "flags"), 6: (0, "name length"), 7: (0x01, "printable")}
    for position, (value, message) in cases.items():
        body = bytearray(data[:-4])
        body[position] = value
        with pytest.raises(FormatError, match=message):
            container.unpack(with_valid_crc(bytes(body)))
    with pytest.raises(FormatError, match="magic"):
        container.unpack(b"GIF89a" + data[6:])


@pytest.fixture
def encoded(tiny_weights) -> bytes:
    return codec.encode(synthetic_image(40, 70), quality=10)


def test_every_corrupted_byte_of_a_real_file_fails_cleanly(encoded):
    for position in range(len(encoded)):
        broken = bytearray(encoded)
        broken[position] ^= 0x5A
        with pytest.raises(FormatError):
            codec.decode(bytes(broken))


def test_every_truncation_of_a_real_file_fails_cleanly(encoded):
    for length in range(len(encoded)):
        with pytest.raises(FormatError):
            codec.decode(encoded[:length])


def test_garbage_streams_with_a_valid_crc_never_crash(encoded):
    header, streams = container.unpack(encoded)
    rng = np.random.default_rng(0)
    for _ in range(30):
        garbage = [rng.bytes(len(s) // 4 * 4 + 4 * int(rng.integers(0, 3))) for s in streams]
        data = container.pack(header, garbage)
        try:
            image = codec.decode(data)
        except AecError:
            continue
        assert image.size == (70, 40)


def test_unknown_model_is_named(encoded):
    header, streams = container.unpack(encoded)
    fake = Header(
        "mbt2099-imaginary",
        *[getattr(header, f) for f in ("fingerprint", "rate", "coder", "mode", "height", "width", "latent_shapes")],
    )
    with pytest.raises(FormatError, match="unknown model 'mbt2099-imaginary'"):
        codec.decode(container.pack(fake, streams))


def test_other_weights_are_never_used(encoded):
    header, streams = container.unpack(encoded)
    fields = header.__dict__ | {"fingerprint": b"\xff" * 8}
    with pytest.raises(WeightsError, match="not installed"):
        codec.decode(container.pack(Header(**fields), streams))


def test_missing_weights_file_is_named(tiny_weights, encoded):
    from codec import weights

    header = codec.read_header(encoded)
    point = next(p for p in weights.rate_points(header.model) if p.fingerprint == header.fingerprint)
    moved = point.weights_path.with_suffix(".moved")
    point.weights_path.rename(moved)
    weights._load_cached.cache_clear()
    try:
        with pytest.raises(WeightsError, match="missing"):
            codec.decode(encoded)
    finally:
        moved.rename(point.weights_path)


def test_latent_shapes_that_disagree_with_the_image_size_are_rejected(encoded):
    header, streams = container.unpack(encoded)
    fields = header.__dict__ | {"height": header.height + 64}
    with pytest.raises(FormatError, match="latent shapes"):
        codec.decode(container.pack(Header(**fields), streams))
