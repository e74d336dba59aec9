"""Peak resident memory of one encode and one decode, each codec in a fresh process.

A fresh process per codec, because peak RSS only ever grows: the number
reported is the peak of the whole process (VmHWM in /proc/self/status, which,
unlike getrusage's ru_maxrss, does not inherit the parent's peak across
fork and exec), and the baseline is the RSS after imports and loading the
model, before the first image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
kind, name, path, device = sys.argv[1:5]
def rss():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024  # MiB
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
reference = np.asarray(Image.open(path).convert("RGB"))
if kind == "ours":
    import torch
    import codec
    from codec import api, weights
    torch.set_grad_enabled(False)
    point = weights.rate_points(name)[-1]
    weights.load(point, device)
    baseline = rss()
    start = time.perf_counter()
    data = codec.encode(reference, quality=100, model=name, device=device)
    encode_s = time.perf_counter() - start
    after_encode = rss()
    start = time.perf_counter()
    codec.decode(data, device=device)
    decode_s = time.perf_counter() - start
else:
    from benchmarks import classical
    (chosen,) = [c for c in classical.available() if c.name == name]
    baseline = rss()
    start = time.perf_counter()
    data = chosen.encode(Image.fromarray(reference), chosen.settings[len(chosen.settings) // 2])
    encode_s = time.perf_counter() - start
    after_encode = rss()
    start = time.perf_counter()
    chosen.decode(data)
    decode_s = time.perf_counter() - start
print(json.dumps({"baseline_mib": baseline, "peak_after_encode_mib": after_encode, "peak_mib": rss(),
                  "encode_s": encode_s, "decode_s": decode_s, "bytes": len(data)}))
"""


def peak_memory(kind: str, name: str, image: Path, device: str = "cpu", timeout: float = 600) -> dict:
    """{'baseline_mib', 'peak_after_encode_mib', 'peak_mib', 'encode_s', 'decode_s', 'bytes'} of one
    encode + decode of `image` (ours at the highest shipped rate point)."""
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, kind, name, str(image), device],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])
