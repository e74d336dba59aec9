"""Fuzz the decoder at scale: ``python -m tests.fuzz_decoder [--cases 100000] [--out FILE]``.

Mutates valid .aec files (tests/fuzzing.py) with hypothesis and decodes each
with the shipped weights. Prints and writes (default
benchmarks/results/fuzz.json) the count of every outcome, the slowest case,
and the process's peak resident memory; exits non-zero if any case failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from tqdm import tqdm

from tests import fuzzing

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz_decoder", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("AECODEC_WEIGHTS", str(fuzzing.REPO_WEIGHTS))
    seeds = fuzzing.make_seeds()
    counts: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    slowest = [0.0, ""]
    bar = tqdm(total=args.cases, desc="fuzz", unit="case", file=sys.stderr)

    @settings(
        max_examples=args.cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzzing.cases(len(seeds)))
    def run(case):
        data = fuzzing.build(seeds, case)
        outcome = fuzzing.check(data)
        counts[outcome.kind] += 1
        if outcome.kind.startswith("FAILURE") and len(failures) < 20:
            failures.append(f"{outcome.kind} :: {data[:64].hex()}")
        if outcome.seconds > slowest[0]:
            slowest[:] = [outcome.seconds, outcome.kind]
        bar.update()

    start = time.perf_counter()
    run()
    bar.close()
    total = sum(counts.values())
    report = {
        "cases": total,
        "seeds": len(seeds),
        "failures": sum(n for kind, n in counts.items() if kind.startswith("FAILURE")),
        "decoded": counts.get("decoded", 0),
        "outcomes": dict(counts.most_common()),
        "slowest_case_s": round(slowest[0], 3),
        "slowest_case_outcome": slowest[1],
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "failure_examples": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
