"""Entropy coding of integer latents with fixed integer CDF tables.

A learned entropy model (compressai's EntropyBottleneck or GaussianConditional)
is turned, once, at export time, into a family of K discrete distributions
stored as integer CDFs (`CdfTables`). Every latent element carries an index
k into that family. Encoder and decoder read the same stored integers, so the
probabilities that drive the coder never depend on floating-point arithmetic
at coding time.

Two coders read these tables:

* ``range`` (default): a range coder (constriction's queue coder). Symbols are
  coded grouped by table index, in raster order inside each group, so each
  group is one vectorized call. Values outside a table's support are coded as
  the table's escape symbol, followed at the end of the stream by their
  zig-zag value as two uniform 16-bit halves.
* ``ans``: compressai's rANS coder (``encode_with_indexes``), which codes
  out-of-range values with its own bypass scheme. That scheme loops forever
  on values near 2**28, so this coder refuses symbols beyond ±ANS_MAX_ABS
  (far beyond what a trained model's latents reach).

Symbol convention (compressai's): a symbol s with table k is coded as
v = s - offset[k]; v in [0, length[k] - 2) is a regular symbol, anything else
escapes. cdf[k, :length[k]] runs from 0 to 2**precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import constriction
import numpy as np
from compressai import ans

CODERS: tuple[str, ...] = ("range", "ans")
ANS_MAX_ABS = 1 << 20

_HALF_WORD = constriction.stream.model.Uniform(1 << 16)


class EntropyDecodeError(ValueError):
    """A stream could not be decoded with the given tables."""


@dataclass
class CdfTables:
    """A family of K integer CDFs, as stored with a model's weights."""

    cdf: np.ndarray  # int32 [K, L]
    length: np.ndarray  # int32 [K]: valid entries of each row
    offset: np.ndarray  # int32 [K]: symbol value of the first regular entry
    precision: int = 16
    _range_models: dict = field(default_factory=dict, repr=False)
    _as_lists: tuple | None = field(default=None, repr=False)

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

    def range_model(self, k: int) -> constriction.stream.model.Categorical:
        """Table k as a categorical model over its regular symbols plus the escape."""
        model = self._range_models.get(k)
        if model is None:
            frequencies = np.diff(self.cdf[k, : self.length[k]]).astype(np.float64)
            model = constriction.stream.model.Categorical(frequencies, perfect=False)
            self._range_models[k] = model
        return model

    def as_lists(self) -> tuple[list, list, list]:
        """The tables as Python lists, the form compressai's rANS coder takes."""
        if self._as_lists is None:
            self._as_lists = (self.cdf.tolist(), self.length.tolist(), self.offset.tolist())
        return self._as_lists


def encode(symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables, coder: str = "range") -> bytes:
    """Code integer `symbols`, each with the CDF table named by `indexes`."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    indexes = np.asarray(indexes, dtype=np.int64).reshape(-1)
    if symbols.shape != indexes.shape:
        raise ValueError("symbols and indexes differ in size")
    if coder == "range":
        return _range_encode(symbols, indexes, tables)
    if coder == "ans":
        if symbols.size and np.abs(symbols).max() > ANS_MAX_ABS:
            raise ValueError(f"the ans coder cannot code latent values beyond ±{ANS_MAX_ABS}; use the range coder")
        cdf, length, offset = tables.as_lists()
        return ans.RansEncoder().encode_with_indexes(symbols.tolist(), indexes.tolist(), cdf, length, offset)
    raise ValueError(f"unknown entropy coder {coder!r}")


def decode(data: bytes, indexes: np.ndarray, tables: CdfTables, coder: str = "range") -> np.ndarray:
    """Inverse of `encode`: the int32 symbols, given the same `indexes`."""
    indexes = np.asarray(indexes, dtype=np.int64).reshape(-1)
    if indexes.size and (indexes.min() < 0 or indexes.max() >= tables.num_tables):
        raise EntropyDecodeError("CDF index out of range")
    if coder == "range":
        return _range_decode(data, indexes, tables)
    if coder == "ans":
        cdf, length, offset = tables.as_lists()
        values = ans.RansDecoder().decode_with_indexes(data, indexes.tolist(), cdf, length, offset)
        return np.asarray(values, dtype=np.int32)
    raise ValueError(f"unknown entropy coder {coder!r}")


def _groups(indexes: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The stable order that sorts `indexes`, and its (table, start, stop) runs."""
    order = np.argsort(indexes, kind="stable")
    sorted_indexes = indexes[order]
    tables, starts = np.unique(sorted_indexes, return_index=True)
    stops = np.append(starts[1:], len(sorted_indexes))
    return order, list(zip(tables.tolist(), starts.tolist(), stops.tolist()))


def _range_encode(symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables) -> bytes:
    values = symbols - tables.offset[indexes]
    num_regular = tables.length[indexes].astype(np.int64) - 2
    escaped = (values < 0) | (values >= num_regular)
    coded = np.where(escaped, num_regular, values).astype(np.int32)

    encoder = constriction.stream.queue.RangeEncoder()
    order, groups = _groups(indexes)
    coded_sorted = coded[order]
    for k, start, stop in groups:
        encoder.encode(coded_sorted[start:stop], tables.range_model(k))

    zigzag = _zigzag(values[escaped])
    if zigzag.size:
        halves = np.stack([zigzag & 0xFFFF, zigzag >> 16], axis=1).reshape(-1)
        encoder.encode(halves.astype(np.int32), _HALF_WORD)
    return encoder.get_compressed().astype("<u4").tobytes()


def _range_decode(data: bytes, indexes: np.ndarray, tables: CdfTables) -> np.ndarray:
    if len(data) % 4:
        raise EntropyDecodeError("range-coded stream length is not a multiple of 4")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    order, groups = _groups(indexes)
    coded_sorted = np.empty(indexes.size, dtype=np.int64)
    try:
        for k, start, stop in groups:
            coded_sorted[start:stop] = decoder.decode(tables.range_model(k), stop - start)
        coded = np.empty_like(coded_sorted)
        coded[order] = coded_sorted
        num_regular = tables.length[indexes].astype(np.int64) - 2
        escaped = coded == num_regular
        values = coded
        count = int(escaped.sum())
        if count:
            halves = decoder.decode(_HALF_WORD, 2 * count).astype(np.int64).reshape(count, 2)
            values[escaped] = _unzigzag(halves[:, 0] | (halves[:, 1] << 16))
    except EntropyDecodeError:
        raise
    except Exception as error:  # constriction reports broken input as various errors
        raise EntropyDecodeError(f"range decoder failed: {error}") from None
    return (values + tables.offset[indexes]).astype(np.int32)


def _zigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return np.where(values >= 0, 2 * values, -2 * values - 1)


def _unzigzag(codes: np.ndarray) -> np.ndarray:
    return np.where(codes % 2 == 0, codes // 2, -(codes + 1) // 2)
