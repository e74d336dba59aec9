"""Entropy coding of integer latents with fixed integer CDF tables.

A learned entropy model (compressai's EntropyBottleneck or GaussianConditional)
is turned, once, at export time, into a family of K discrete distributions
stored as integer CDFs (`CdfTables`). Every latent element carries an index
k into that family. Encoder and decoder read the same stored integers, so the
probabilities of each table never depend on floating-point arithmetic at
coding time. (Which table an element uses may: for the hyperprior it comes
from the hyper-synthesis network; making that integer-exact is separate work.)

Two coders from constriction (Bamler 2022), both in safe Rust, so a corrupt
stream yields wrong symbols or an error, never a crash:

* ``range`` (default): a range coder (queue semantics, ``queue.RangeEncoder``);
* ``ans``: asymmetric numeral systems (stack semantics, ``stack.AnsCoder``),
  slightly faster to decode; elements are pushed in reverse so that they
  decode in the same order as with the range coder.

compressai's own rANS coder was not used: its decoder reads past the end of a
short stream and can crash the process on crafted input.

Both code the symbols grouped by table index, in element order inside each
group, so each group is one vectorized call. Symbol convention (compressai's):
a symbol s with table k is coded as v = s - offset[k]; v in
[0, length[k] - 2) is a regular symbol and anything else is the table's escape
symbol, whose zig-zag value follows, after all groups, as two uniform 16-bit
halves. cdf[k, :length[k]] runs from 0 to 2**precision.

Every stream ends with `END_MARKER`, a 32-bit constant coded as two more
uniform 16-bit halves (format version 2 on). A coder that runs past the end of
its data reads zeros rather than failing, so without the marker a truncated or
inconsistent stream would decode into garbage, and, for a large image, only
after a long synthesis; with it the decoder knows, before any pixel is made,
that it consumed a whole, consistent stream (a wrong stream passes with
probability 2**-32).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import constriction
import numpy as np

CODERS: tuple[str, ...] = ("range", "ans")

_HALF_WORD = constriction.stream.model.Uniform(1 << 16)
END_MARKER = 0xAEC0FFEE
_END_HALVES = np.array([END_MARKER & 0xFFFF, END_MARKER >> 16], dtype=np.int32)


class EntropyDecodeError(ValueError):
    """A stream could not be decoded with the given tables."""


@dataclass
class CdfTables:
    """A family of K integer CDFs, as stored with a model's weights."""

    cdf: np.ndarray  # int32 [K, L]
    length: np.ndarray  # int32 [K]: valid entries of each row
    offset: np.ndarray  # int32 [K]: symbol value of the first regular entry
    precision: int = 16
    _models: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.cdf = np.ascontiguousarray(self.cdf, dtype=np.int32)
        self.length = np.ascontiguousarray(self.length, dtype=np.int32).reshape(-1)
        self.offset = np.ascontiguousarray(self.offset, dtype=np.int32).reshape(-1)
        if self.cdf.ndim != 2 or not (len(self.cdf) == len(self.length) == len(self.offset)):
            raise ValueError("inconsistent CDF table shapes")
        if (self.length < 3).any() or (self.length > self.cdf.shape[1]).any():
            raise ValueError("CDF lengths out of range")

    @property
    def num_tables(self) -> int:
        return len(self.length)

    def model(self, k: int) -> constriction.stream.model.Categorical:
        """Table k as a categorical model over its regular symbols plus the escape."""
        model = self._models.get(k)
        if model is None:
            frequencies = np.diff(self.cdf[k, : self.length[k]]).astype(np.float64)
            model = constriction.stream.model.Categorical(frequencies, perfect=False)
            self._models[k] = model
        return model


CHUNK = 1 << 22  # elements per step of the element-wise passes: bounds their temporaries


def encode(
    symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables, coder: str = "range", terminated: bool = True
) -> bytes:
    """Code integer `symbols`, each with the CDF table named by `indexes`, then (if `terminated`) END_MARKER.

    Memory: besides the inputs, the coded values as int32 in table order; the
    element-wise work and the sort run `CHUNK` elements at a time. At 8000×8000
    pixels and M=192 that is 0.2 GB, where whole-array int64 intermediates and
    sort order took 2.4 GB.
    """
    symbols = np.asarray(symbols).reshape(-1)
    indexes = np.asarray(indexes).reshape(-1)
    if symbols.shape != indexes.shape:
        raise ValueError("symbols and indexes differ in size")
    if coder not in CODERS:
        raise ValueError(f"unknown entropy coder {coder!r}")
    coded_sorted = np.empty(symbols.size, dtype=np.int32)
    escaped_values = [np.zeros(0, dtype=np.int64)]
    groups, chunks = _table_order(indexes, tables.num_tables)
    for part, order, runs in chunks:
        table = indexes[part]
        values = symbols[part].astype(np.int64) - tables.offset[table]
        num_regular = tables.length[table].astype(np.int64) - 2
        escaped = (values < 0) | (values >= num_regular)
        escaped_values.append(values[escaped])
        coded = np.where(escaped, num_regular, values)[order]
        for first, stream_start, count in runs:
            coded_sorted[stream_start : stream_start + count] = coded[first : first + count]
    zigzag = _zigzag(np.concatenate(escaped_values))
    halves = np.stack([zigzag & 0xFFFF, zigzag >> 16], axis=1).reshape(-1).astype(np.int32)

    if coder == "range":
        encoder = constriction.stream.queue.RangeEncoder()
        for k, start, stop in groups:
            encoder.encode(coded_sorted[start:stop], tables.model(k))
        if halves.size:
            encoder.encode(halves, _HALF_WORD)
        if terminated:
            encoder.encode(_END_HALVES, _HALF_WORD)
    else:  # a stack: push in reverse so that it pops in the range coder's order
        encoder = constriction.stream.stack.AnsCoder()
        if terminated:
            encoder.encode_reverse(_END_HALVES, _HALF_WORD)
        if halves.size:
            encoder.encode_reverse(halves, _HALF_WORD)
        for k, start, stop in reversed(groups):
            encoder.encode_reverse(coded_sorted[start:stop], tables.model(k))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(
    data: bytes, indexes: np.ndarray, tables: CdfTables, coder: str = "range", terminated: bool = True
) -> np.ndarray:
    """Inverse of `encode`: the int32 symbols, given the same `indexes` (and `terminated`)."""
    indexes = np.asarray(indexes).reshape(-1)
    if coder not in CODERS:
        raise ValueError(f"unknown entropy coder {coder!r}")
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.num_tables):
        raise EntropyDecodeError("CDF index out of range")
    if len(data) % 4:
        raise EntropyDecodeError("stream length is not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    groups, chunks = _table_order(indexes, tables.num_tables)
    coded_sorted = np.empty(indexes.size, dtype=np.int32)
    try:
        if coder == "range":
            decoder = constriction.stream.queue.RangeDecoder(words)
        else:
            decoder = constriction.stream.stack.AnsCoder(words)
        for k, start, stop in groups:
            coded_sorted[start:stop] = decoder.decode(tables.model(k), stop - start)
        values = np.empty_like(coded_sorted)
        for part, order, runs in chunks:
            coded = np.empty(len(order), dtype=np.int32)
            for first, stream_start, count in runs:
                coded[first : first + count] = coded_sorted[stream_start : stream_start + count]
            values[part.start + order] = coded
        del coded_sorted
        escaped = _escaped_positions(values, indexes, tables)
        if escaped.size:
            halves = decoder.decode(_HALF_WORD, 2 * escaped.size).astype(np.int64).reshape(escaped.size, 2)
            values[escaped] = _unzigzag(halves[:, 0] | (halves[:, 1] << 16))  # wraps to int32, as it always did
        end_marker_found = not terminated or np.array_equal(decoder.decode(_HALF_WORD, 2), _END_HALVES)
    except Exception as error:  # constriction reports broken input as various errors
        raise EntropyDecodeError(f"{coder} decoder failed: {error}") from None
    if not end_marker_found:
        raise EntropyDecodeError(f"{coder} stream does not end with the end marker (truncated or inconsistent)")
    for start in range(0, values.size, CHUNK):
        values[start : start + CHUNK] += tables.offset[indexes[start : start + CHUNK]]
    return values


Runs = list[tuple[int, int, int]]


def _table_order(indexes: np.ndarray, num_tables: int) -> tuple[Runs, Iterator[tuple[slice, np.ndarray, Runs]]]:
    """The stream's order: elements grouped by table, in element order within a table (a stable sort).

    Returns the (table, start, stop) run of each table in the stream, and an
    iterator over chunks of `CHUNK` elements: the chunk's slice, the order that
    sorts the chunk by table, and for each table in the chunk its (first position
    in that sorted chunk, position in the stream, count). A counting sort, one
    chunk at a time: no sort order of the whole array is ever held (int64: 0.4 GB
    at 8000×8000 pixels and M=192).
    """
    counts = np.zeros(num_tables, dtype=np.int64)
    for start in range(0, indexes.size, CHUNK):
        counts += np.bincount(indexes[start : start + CHUNK], minlength=num_tables)[:num_tables]
    stream_starts = np.cumsum(counts) - counts
    groups = [(k, int(stream_starts[k]), int(stream_starts[k] + counts[k])) for k in np.flatnonzero(counts).tolist()]

    def chunks() -> Iterator[tuple[slice, np.ndarray, Runs]]:
        cursor = stream_starts.copy()
        for start in range(0, indexes.size, CHUNK):
            table = indexes[start : start + CHUNK]
            order = np.argsort(table.astype(np.uint16 if num_tables <= 1 << 16 else np.int64), kind="stable")
            chunk_counts = np.bincount(table, minlength=num_tables)[:num_tables]
            firsts = np.cumsum(chunk_counts) - chunk_counts
            runs = [(int(firsts[k]), int(cursor[k]), int(chunk_counts[k])) for k in np.flatnonzero(chunk_counts)]
            cursor += chunk_counts
            yield slice(start, start + len(table)), order, runs

    return groups, chunks()


def _escaped_positions(coded: np.ndarray, indexes: np.ndarray, tables: CdfTables) -> np.ndarray:
    """Positions of the elements whose decoded value is their table's escape symbol."""
    positions = [
        np.flatnonzero(coded[start : start + CHUNK] == tables.length[indexes[start : start + CHUNK]] - 2) + start
        for start in range(0, coded.size, CHUNK)
    ]
    return np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)


def _zigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return np.where(values >= 0, 2 * values, -2 * values - 1)


def _unzigzag(codes: np.ndarray) -> np.ndarray:
    return np.where(codes % 2 == 0, codes // 2, -(codes + 1) // 2)
