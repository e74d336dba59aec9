"""A short run of the decoder fuzzer (the full one: python -m tests.fuzz_decoder), and its hardest cases."""

import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings

import codec
from codec.errors import FormatError
from tests import fuzzing

SHIPPED_SEEDS: list[bytes] = []


@pytest.fixture
def seeds(monkeypatch):
    monkeypatch.setenv("AECODEC_WEIGHTS", str(fuzzing.REPO_WEIGHTS))
    if not SHIPPED_SEEDS:
        SHIPPED_SEEDS.extend(fuzzing.make_seeds())
    return SHIPPED_SEEDS


def test_mutated_files_decode_or_raise_the_documented_error_quickly(seeds):
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(fuzzing.cases(len(seeds)))
    def one_case(case):
        outcome = fuzzing.check(fuzzing.build(seeds, case))
        assert not outcome.kind.startswith("FAILURE"), outcome.kind

    one_case()


def test_mutated_channelwise_files_decode_or_raise_the_documented_error_quickly(tiny_weights):
    seeds = fuzzing.make_seeds(("minnen2020-channelwise",))

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(fuzzing.cases(len(seeds)))
    def one_case(case):
        outcome = fuzzing.check(fuzzing.build(seeds, case))
        assert not outcome.kind.startswith("FAILURE"), outcome.kind

    one_case()


def test_every_seed_decodes(seeds):
    for seed in seeds:
        assert fuzzing.check(seed).kind == "decoded"


def test_a_consistent_8k_header_over_tiny_streams_is_rejected_fast(seeds):
    for seed in seeds:
        data = fuzzing.mutate(seed, ("dimensions", 7999, 7999, b"huge"))
        data = data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
        header = codec.read_header(data)
        assert (header.height, header.width) == (8000, 8000)
        start = time.perf_counter()
        with pytest.raises(FormatError, match="entropy-coded stream is corrupt"):
            codec.decode(data)
        assert time.perf_counter() - start < fuzzing.CASE_SECONDS


def test_a_shortened_stream_with_a_valid_crc_names_the_end_marker(seeds):
    seed = seeds[0]  # factorized, range coder: one stream
    header, streams = codec.container.unpack(seed)
    shorter = codec.container.pack(header, [streams[0][:-4]])
    with pytest.raises(FormatError, match="end marker"):
        codec.decode(shorter)
