import numpy as np
import pytest

from codec import entropy
from codec.entropy import CdfTables


def gaussian_like_tables() -> CdfTables:
    """Three tables of different widths, precision 16, with an escape entry each."""
    rows, lengths, offsets = [], [], []
    for half_width in (1, 4, 20):
        values = np.arange(-half_width, half_width + 1)
        pmf = np.exp(-0.5 * (values / (half_width / 2 + 0.5)) ** 2)
        pmf = np.append(pmf / pmf.sum() * 0.999, 0.001)  # regular symbols + escape
        freqs = np.maximum(1, np.round(pmf * (1 << 16) - 1)).astype(np.int64)
        freqs[np.argmax(freqs)] += (1 << 16) - freqs.sum()
        rows.append(np.concatenate([[0], np.cumsum(freqs)]))
        lengths.append(len(rows[-1]))
        offsets.append(-half_width)
    cdf = np.zeros((3, max(lengths)), dtype=np.int32)
    for i, row in enumerate(rows):
        cdf[i, : len(row)] = row
    return CdfTables(cdf, np.array(lengths), np.array(offsets))


@pytest.mark.parametrize("coder", entropy.CODERS)
def test_round_trip_includes_out_of_range_values(coder):
    tables = gaussian_like_tables()
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 3, size=5000)
    symbols = np.round(rng.normal(0, 3, size=5000)).astype(np.int32)
    symbols[::97] = rng.integers(-(2**20), 2**20, size=symbols[::97].shape)  # far outside every table
    symbols[5] = np.iinfo(np.int32).min + 1
    data = entropy.encode(symbols, indexes, tables, coder)
    np.testing.assert_array_equal(entropy.decode(data, indexes, tables, coder), symbols)


def test_range_coder_spends_about_the_entropy():
    tables = gaussian_like_tables()
    k = 2
    frequencies = np.diff(tables.cdf[k, : tables.length[k]]) / (1 << 16)
    rng = np.random.default_rng(1)
    values = rng.choice(len(frequencies) - 1, size=20000, p=frequencies[:-1] / frequencies[:-1].sum())
    symbols = values + tables.offset[k]
    data = entropy.encode(symbols, np.full(symbols.shape, k), tables, "range")
    ideal_bits = -np.log2(frequencies[values]).sum()
    assert len(data) * 8 < ideal_bits * 1.01 + 64


@pytest.mark.parametrize("coder", entropy.CODERS)
def test_decoding_garbage_raises_decode_error_or_returns_symbols(coder):
    tables = gaussian_like_tables()
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 3, size=200_000)
    for length in (0, 4, 8, 64):
        garbage = rng.bytes(length)
        try:
            out = entropy.decode(garbage, indexes, tables, coder)
        except entropy.EntropyDecodeError:
            continue
        assert out.shape == indexes.shape


def test_index_out_of_range_is_rejected():
    tables = gaussian_like_tables()
    with pytest.raises(entropy.EntropyDecodeError):
        entropy.decode(b"\0\0\0\0", np.array([3]), tables, "range")


@pytest.mark.parametrize("coder", entropy.CODERS)
@pytest.mark.parametrize("layout", ["shuffled", "channel-major", "one table unused"])
def test_coding_in_chunks_gives_the_same_stream_and_symbols(coder, layout, monkeypatch):
    tables = gaussian_like_tables()
    rng = np.random.default_rng(2)
    indexes = rng.integers(0, 3, size=1000).astype(np.int32)
    if layout == "channel-major":
        indexes = np.sort(indexes)
    elif layout == "one table unused":
        indexes[indexes == 1] = 2
    symbols = np.round(rng.normal(0, 4, size=1000)).astype(np.int32)
    symbols[::31] = rng.integers(-(2**30), 2**30, size=symbols[::31].shape)  # escapes in every chunk
    whole = entropy.encode(symbols, indexes, tables, coder)
    monkeypatch.setattr(entropy, "CHUNK", 7)
    assert entropy.encode(symbols, indexes, tables, coder) == whole
    decoded = entropy.decode(whole, indexes, tables, coder)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, symbols)
