"""A structure-aware fuzzer for the .aec decoder (hypothesis strategies and the oracle).

Each case takes a valid seed file and applies one to four mutations: bit
flips, truncation, random byte runs, inserted or deleted bytes, a random
stream-length field, random or huge image dimensions (with the stream table
made consistent, so the decoder believes it), or wholly random bytes. Half the
cases recompute the CRC-32 afterwards, so that mutations reach the checks
behind the checksum: header validation, weights lookup, entropy decoding and
its end marker.

The oracle (`check`): decoding either succeeds with an image of the header's
size, or raises AecError (the documented decode error, reported to users as
one line); anything else, or a case slower than `CASE_SECONDS`, is a failure.

Run at scale outside CI with ``python -m tests.fuzz_decoder``; CI runs a
short smoke version (tests/test_fuzz.py).
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

import codec
from codec import api, weights
from codec.errors import AecError
from tests.conftest import XMP, camera_exif, icc_profile

CASE_SECONDS = 5.0
REPO_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "models"


@dataclass
class Outcome:
    kind: str  # "decoded", "AecError: <first words>", or "FAILURE: ..."
    seconds: float


def make_seeds(models: tuple[str, ...] | None = None) -> list[bytes]:
    """Valid files to mutate: every model with installed weights (or `models`) × both coders, RGB and
    grayscale, small odd sizes; and one RGB file with an ICC profile, EXIF and XMP."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:72]
    rgb = np.clip(np.stack([xx * 3, yy * 5, (xx + yy) * 2], -1) + rng.normal(0, 6, (40, 72, 3)), 0, 255)
    rgb = rgb.astype(np.uint8)
    seeds = []
    for model in models or sorted({point.model for point in weights.rate_points()}):
        for coder in ("range", "ans"):
            seeds.append(codec.encode(rgb, quality=75, model=model, coder=coder))
            seeds.append(codec.encode(rgb[:17, :33, 0], quality=30, model=model, coder=coder))
    profiled = Image.fromarray(rgb)
    profiled.info["icc_profile"] = icc_profile()  # flags bit 0: the profile's length and bytes
    profiled.info["exif"], profiled.info["xmp"] = camera_exif(), XMP  # bits 1 and 2
    seeds.append(codec.encode(profiled, quality=75, model=(models or (api.DEFAULT_MODEL,))[0]))
    return seeds


def _name_length(data: bytes) -> int:
    return data[6] if len(data) > 6 else 0


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def mutate(data: bytes, op: tuple) -> bytes:
    """Apply one mutation (a tuple drawn by `mutations()`) to a file's bytes."""
    kind, a, b, c = op
    n = len(data)
    if kind == "flip" and n:
        buf = bytearray(data)
        buf[a % n] ^= 1 << (b % 8)
        return bytes(buf)
    if kind == "truncate":
        return data[: a % (n + 1)]
    if kind == "overwrite" and n:
        start = a % n
        return data[:start] + c[: n - start] + data[start + len(c) :]
    if kind == "insert":
        start = a % (n + 1)
        return data[:start] + c + data[start:]
    if kind == "delete" and n:
        start = a % n
        return data[:start] + data[start + 1 + b % 16 :]
    if kind == "stream_length":
        at = 7 + _name_length(data) + 23 + 10 * (b % 3) + 6
        if at + 4 <= n:
            return data[:at] + struct.pack("<I", a & 0xFFFFFFFF) + data[at + 4 :]
        return data
    if kind == "dimensions":
        at = 7 + _name_length(data) + 14
        if at + 9 > n:
            return data
        height, width = (1 + a % 65535, 1 + b % 65535) if c == b"huge" else (a & 0xFFFFFFFF, b & 0xFFFFFFFF)
        buf = bytearray(data)
        buf[at : at + 8] = struct.pack("<II", height, width)
        if c == b"huge":  # make the stream table agree, so only the streams can betray it
            count = buf[at + 8]
            for i in range(count):
                entry = at + 9 + 10 * i
                if entry + 6 > n:
                    break
                channels, rows, columns = struct.unpack_from("<HHH", buf, entry)
                factor = 64 if i == 0 and count >= 2 else 16  # z comes first in every multi-stream model
                padded_h, padded_w = -(-height // 64) * 64, -(-width // 64) * 64
                struct.pack_into("<HHH", buf, entry, channels, padded_h // factor, padded_w // factor)
        return bytes(buf)
    if kind == "random":
        return c
    return data


def mutations():
    """One mutation: (kind, a, b, payload)."""
    kinds = st.sampled_from(
        ["flip", "flip", "flip", "truncate", "overwrite", "insert", "delete", "stream_length", "dimensions", "random"]
    )
    return st.tuples(
        kinds,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.one_of(st.binary(min_size=1, max_size=64), st.just(b"huge")),
    )


def cases(num_seeds: int):
    """(seed index, mutations, recompute CRC) triples."""
    return st.tuples(st.integers(0, num_seeds - 1), st.lists(mutations(), min_size=1, max_size=4), st.booleans())


def build(seeds: list[bytes], case: tuple) -> bytes:
    seed_index, ops, fix_crc = case
    data = seeds[seed_index]
    for op in ops:
        data = mutate(data, op)
    if fix_crc and len(data) > 4:
        data = _with_crc(data[:-4])
    return data


def check(data: bytes) -> Outcome:
    """Decode `data` and classify what happened."""
    start = time.perf_counter()
    try:
        image = codec.decode(data)
        header = codec.read_header(data)
        kind = "decoded" if image.size == (header.width, header.height) else "FAILURE: wrong decoded size"
    except AecError as error:
        words = " ".join(str(error).split()[:5])
        kind = f"{type(error).__name__}: " + re.sub(r"'[^']*'|[0-9a-f]{16}|\d+(\.\d+)?", "#", words)
    except Exception as error:  # noqa: BLE001 - the oracle's whole point
        kind = f"FAILURE: {type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    if seconds > CASE_SECONDS and not kind.startswith("FAILURE"):
        kind = f"FAILURE: slow ({seconds:.1f} s) after {kind}"
    return Outcome(kind, seconds)
