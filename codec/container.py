"""The .aec file format, version 2: every byte, and its validation.

All integers are little-endian. Offsets are from the start of the file; L is
the length of the model name. docs/FORMAT.md is the same table with prose.

    offset    size  field
    0         4     magic: 89 41 45 43 ("\\x89AEC")
    4         1     format version: 2 (1 is read too; see below)
    5         1     flags: bit 0 = an ICC profile follows the stream table, bit 1 = EXIF,
                    bit 2 = XMP (in that order); other bits reserved (set: an error)
    6         1     L: length of the model name, 1..64
    7         L     model name, printable ASCII without spaces (e.g. "bmshj2018-hyperprior")
    7+L       8     weights fingerprint: first 8 bytes of the SHA-256 of the weights file
    15+L      4     rate parameter: λ of the rate point, float32
    19+L      1     entropy coder: 0 = range, 1 = ans (both constriction's)
    20+L      1     colour mode: 1 = grayscale, 3 = RGB
    21+L      4     image height, 1..65535
    25+L      4     image width, 1..65535; height × width ≤ 2**26
    29+L      1     S: number of latent streams, 1..8
    30+L      10·S  per stream: channels u16, rows u16, columns u16, byte length u32
    30+L+10S  4+P   only if flags bit 0: P u32, 1..MAX_PROFILE_BYTES, then the P bytes
                    of the ICC profile of the coded pixels' colour space
    …         4+E   only if flags bit 1: E u32, 1..MAX_METADATA_BYTES, then E bytes of
                    EXIF (TIFF-structured: "II*\0" or "MM\0*" first)
    …         4+X   only if flags bit 2: X u32, 1..MAX_METADATA_BYTES, then X bytes of
                    XMP (a UTF-8 packet)
    …         Σ     the S streams' bytes, back to back, in the order above
    end-4     4     CRC-32 (zlib) of every byte before it

Versions. Version 2 is version 1 with one change inside the streams: each
entropy-coded stream ends with a 32-bit end marker (codec/entropy.py), which
lets the decoder reject a truncated or inconsistent stream before it
synthesizes any pixel. Version 1 files (no end marker) still decode.

Flags. Bit 0 (aecodec 0.5.3 on, version 2 files only) marks a file that carries
an ICC profile. A file without one is byte for byte what earlier versions
wrote; a file with one is refused by readers that predate the flag ("unknown
header flags"), as the reserved byte intends, rather than shown in the wrong
colours. Bits 1 and 2 (aecodec 0.6.0 on) do the same for EXIF and XMP.

The file is exactly that long: trailing bytes are an error. `unpack` checks the
structure and the CRC before it returns anything; the codec then checks that
the model, weights and latent shapes are the ones the header implies.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from codec.errors import FormatError

MAGIC = b"\x89AEC"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_NAME_LENGTH = 64
MAX_DIMENSION = 65535
MAX_PIXELS = 1 << 26
MAX_STREAMS = 8
MAX_FILE_BYTES = 1 << 30  # readers refuse larger inputs before parsing
MAX_PROFILE_BYTES = 1 << 20  # an ICC profile; matrix profiles take about 0.5 kB, LUT ones up to a few 100 kB
MAX_METADATA_BYTES = 1 << 20  # EXIF or XMP; a camera's EXIF with its thumbnail takes a few 10 kB
FLAG_PROFILE, FLAG_EXIF, FLAG_XMP = 0x01, 0x02, 0x04
# The optional blocks after the stream table, in file order: (flag, length cap, name), as Header's last fields.
BLOCKS = (
    (FLAG_PROFILE, MAX_PROFILE_BYTES, "ICC profile"),
    (FLAG_EXIF, MAX_METADATA_BYTES, "EXIF"),
    (FLAG_XMP, MAX_METADATA_BYTES, "XMP"),
)
CODER_IDS = {"range": 0, "ans": 1}
MODE_IDS = {"L": 1, "RGB": 3}

_FIXED_AFTER_NAME = struct.Struct("<8sfBBIIB")  # fingerprint … stream count
_STREAM = struct.Struct("<HHHI")
_CRC = struct.Struct("<I")
_LENGTH = struct.Struct("<I")  # of the ICC profile, EXIF and XMP blocks


@dataclass(frozen=True)
class Header:
    """What an .aec file says about itself, besides the stream bytes."""

    model: str
    fingerprint: bytes
    rate: float
    coder: str
    mode: str
    height: int
    width: int
    latent_shapes: tuple[tuple[int, int, int], ...]
    version: int = VERSION
    icc_profile: bytes = b""  # the ICC profile of the coded pixels (empty: none, i.e. sRGB)
    exif: bytes = b""  # TIFF-structured EXIF (empty: none)
    xmp: bytes = b""  # XMP packet (empty: none)

    @property
    def streams_terminated(self) -> bool:
        """Whether each stream ends with the entropy coder's end marker (version ≥ 2)."""
        return self.version >= 2


def _blocks(header: Header) -> dict[tuple[int, int, str], bytes]:
    return dict(zip(BLOCKS, (header.icc_profile, header.exif, header.xmp)))


def pack(header: Header, streams: list[bytes]) -> bytes:
    """Serialize a header and its streams (one per latent shape) into a file."""
    name = header.model.encode("ascii")
    if not 1 <= len(name) <= MAX_NAME_LENGTH or len(streams) != len(header.latent_shapes):
        raise ValueError("invalid header")
    if header.version not in READABLE_VERSIONS:
        raise ValueError(f"cannot write format version {header.version}")
    blocks = _blocks(header)
    for (_, limit, what), block in blocks.items():
        if len(block) > limit or (block and header.version < 2):
            raise ValueError(f"{what} too large, or in a version 1 file")
    flags = sum(flag for (flag, _, _), block in blocks.items() if block)
    parts = [MAGIC, bytes([header.version, flags, len(name)]), name]
    parts.append(
        _FIXED_AFTER_NAME.pack(
            header.fingerprint,
            header.rate,
            CODER_IDS[header.coder],
            MODE_IDS[header.mode],
            header.height,
            header.width,
            len(streams),
        )
    )
    for shape, stream in zip(header.latent_shapes, streams):
        parts.append(_STREAM.pack(*shape, len(stream)))
    for block in blocks.values():
        if block:
            parts += [_LENGTH.pack(len(block)), block]
    parts.extend(streams)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse and validate a file; raises FormatError naming the first failed check."""
    reader = _Reader(data)
    if reader.take(4, "magic") != MAGIC:
        raise FormatError("not an .aec file (bad magic bytes)")
    version, flags, name_length = reader.take(3, "version")
    if version not in READABLE_VERSIONS:
        raise FormatError(
            f"unsupported .aec format version {version} (this aecodec reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    if flags & ~(FLAG_PROFILE | FLAG_EXIF | FLAG_XMP) or (flags and version < 2):
        raise FormatError(f"unknown header flags {flags:#04x}")
    if not 1 <= name_length <= MAX_NAME_LENGTH:
        raise FormatError(f"model name length {name_length} out of range 1..{MAX_NAME_LENGTH}")
    name = reader.take(name_length, "model name")
    if not all(0x21 <= c < 0x7F for c in name):
        raise FormatError("model name is not printable ASCII")
    fingerprint, rate, coder_id, mode_id, height, width, count = _FIXED_AFTER_NAME.unpack(
        reader.take(_FIXED_AFTER_NAME.size, "header")
    )
    coder = _lookup(CODER_IDS, coder_id, "entropy coder")
    mode = _lookup(MODE_IDS, mode_id, "colour mode")
    if not (math.isfinite(rate) and rate > 0):
        raise FormatError(f"rate parameter {rate} is not a positive number")
    if not (1 <= height <= MAX_DIMENSION and 1 <= width <= MAX_DIMENSION):
        raise FormatError(f"image size {width}×{height} out of range 1..{MAX_DIMENSION}")
    if height * width > MAX_PIXELS:
        raise FormatError(f"image size {width}×{height} exceeds the cap of {MAX_PIXELS} pixels")
    if not 1 <= count <= MAX_STREAMS:
        raise FormatError(f"stream count {count} out of range 1..{MAX_STREAMS}")
    shapes, lengths = [], []
    for _ in range(count):
        channels, rows, columns, length = _STREAM.unpack(reader.take(_STREAM.size, "stream table"))
        if 0 in (channels, rows, columns):
            raise FormatError("empty latent shape in stream table")
        shapes.append((channels, rows, columns))
        lengths.append(length)
    blocks = []
    for flag, limit, what in BLOCKS:
        if not flags & flag:
            blocks.append(b"")
            continue
        (length,) = _LENGTH.unpack(reader.take(_LENGTH.size, f"{what} length"))
        if not 1 <= length <= limit:
            raise FormatError(f"{what} length {length} out of range 1..{limit}")
        blocks.append(reader.take(length, what))
    if sum(lengths) + _CRC.size != reader.remaining:
        if sum(lengths) + _CRC.size > reader.remaining:
            raise FormatError("file is truncated (stream lengths exceed the file size)")
        raise FormatError("file has trailing bytes after its streams")
    streams = [reader.take(length, "stream") for length in lengths]
    (crc,) = _CRC.unpack(reader.take(_CRC.size, "checksum"))
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise FormatError("checksum mismatch: the file is corrupt")
    header = Header(
        name.decode("ascii"), fingerprint, rate, coder, mode, height, width, tuple(shapes), version, *blocks
    )
    return header, streams


def _lookup(ids: dict[str, int], value: int, what: str) -> str:
    for key, known in ids.items():
        if known == value:
            return key
    raise FormatError(f"unknown {what} id {value}")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.position

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise FormatError(f"file is truncated (in the {what})")
        chunk = bytes(self.data[self.position : self.position + size])
        self.position += size
        return chunk
