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


def encode(
    symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables, coder: str = "range", terminated: bool = True
) -> bytes:
    """Code integer `symbols`, each with the CDF table named by `indexes`, then (if `terminated`) END_MARKER."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    indexes = np.asarray(indexes, dtype=np.int64).reshape(-1)
    if symbols.shape != indexes.shape:
        raise ValueError("symbols and indexes differ in size")
    if coder not in CODERS:
        raise ValueError(f"unknown entropy coder {coder!r}")
    values = symbols - tables.offset[indexes]
    num_regular = tables.length[indexes].astype(np.int64) - 2
    escaped = (values < 0) | (values >= num_regular)
    coded = np.where(escaped, num_regular, values).astype(np.int32)
    order, groups = _groups(indexes)
    coded_sorted = coded[order]
    zigzag = _zigzag(values[escaped])
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
    indexes = np.asarray(indexes, dtype=np.int64).reshape(-1)
    if coder not in CODERS:
        raise ValueError(f"unknown entropy coder {coder!r}")
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.num_tables):
        raise EntropyDecodeError("CDF index out of range")
    if len(data) % 4:
        raise EntropyDecodeError("stream length is not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    order, groups = _groups(indexes)
    coded_sorted = np.empty(indexes.size, dtype=np.int64)
    try:
        if coder == "range":
            decoder = constriction.stream.queue.RangeDecoder(words)
        else:
            decoder = constriction.stream.stack.AnsCoder(words)
        for k, start, stop in groups:
            coded_sorted[start:stop] = decoder.decode(tables.model(k), stop - start)
        values = np.empty_like(coded_sorted)
        values[order] = coded_sorted
        escaped = values == tables.length[indexes].astype(np.int64) - 2
        count = int(escaped.sum())
        if count:
            halves = decoder.decode(_HALF_WORD, 2 * count).astype(np.int64).reshape(count, 2)
            values[escaped] = _unzigzag(halves[:, 0] | (halves[:, 1] << 16))
        end_marker_found = not terminated or np.array_equal(decoder.decode(_HALF_WORD, 2), _END_HALVES)
    except Exception as error:  # constriction reports broken input as various errors
        raise EntropyDecodeError(f"{coder} decoder failed: {error}") from None
    if not end_marker_found:
        raise EntropyDecodeError(f"{coder} stream does not end with the end marker (truncated or inconsistent)")
    return (values + tables.offset[indexes]).astype(np.int32)


def _groups(indexes: np.ndarray) -> tuple[np.ndarray | slice, list[tuple[int, int, int]]]:
    """The stable order that sorts `indexes`, and its (table, start, stop) runs.

    Indexes that are already sorted (one table per channel, channel-major) keep
    their order without a sort or a permuted copy.
    """
    if indexes.size < 2 or bool(np.all(indexes[1:] >= indexes[:-1])):
        order: np.ndarray | slice = slice(None)
        sorted_indexes = indexes
    else:
        order = np.argsort(indexes, kind="stable")
        sorted_indexes = indexes[order]
    if not sorted_indexes.size:
        return order, []
    starts = np.concatenate([[0], np.flatnonzero(sorted_indexes[1:] != sorted_indexes[:-1]) + 1])
    tables = sorted_indexes[starts]
    stops = np.append(starts[1:], len(sorted_indexes))
    return order, list(zip(tables.tolist(), starts.tolist(), stops.tolist()))


def _zigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return np.where(values >= 0, 2 * values, -2 * values - 1)


def _unzigzag(codes: np.ndarray) -> np.ndarray:
    return np.where(codes % 2 == 0, codes // 2, -(codes + 1) // 2)
