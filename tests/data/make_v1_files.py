"""How tests/data/v1 was made with aecodec 0.1 (format version 1; never regenerate: the current code writes version 2).

Tiny models (N=8, M=12, 400 CPU steps on the training photos) with their CDF tables, a few .aec files made with
them, and each file's decoded image. tests/test_compatibility.py decodes the files
with the current code and compares against the decoded images.
"""

from pathlib import Path

import numpy as np
from PIL import Image

import codec

OUT = Path(__file__).resolve().parent / "v1"


def main() -> None:
    if (OUT / "weights").exists():
        raise SystemExit(f"{OUT} exists: old test files are never regenerated")
    import os
    import tempfile

    from train.train import main as train

    for arch, lmbda in (("bmshj2018-factorized", 0.004), ("bmshj2018-hyperprior", 0.03)):
        with tempfile.TemporaryDirectory() as run:
            train([
                f"--arch={arch}", "--N=8", "--M=12", f"--lmbda={lmbda}", "--crop=64", "--batch=8", "--steps=400",
                "--lr=2e-3", "--warmup=20", f"--out_dir={run}", f"--export_dir={OUT / 'weights'}",
            ])  # fmt: skip

    os.environ["AECODEC_WEIGHTS"] = str(OUT / "weights")
    sample = Path(__file__).resolve().parents[2] / "assets" / "sample.png"
    rgb = np.asarray(Image.open(sample).convert("RGB"))[200:240, 300:356]
    gray = np.asarray(Image.fromarray(rgb).convert("L"))[:33, :17]
    cases = {
        "factorized-range-rgb": (rgb, "bmshj2018-factorized", "range"),
        "hyperprior-range-rgb": (rgb, "bmshj2018-hyperprior", "range"),
        "hyperprior-ans-rgb": (rgb, "bmshj2018-hyperprior", "ans"),
        "hyperprior-range-gray": (gray, "bmshj2018-hyperprior", "range"),
    }
    for name, (image, model, coder) in cases.items():
        data = codec.encode(image, model=model, coder=coder)
        (OUT / f"{name}.aec").write_bytes(data)
        codec.decode(data).save(OUT / f"{name}.png")


if __name__ == "__main__":
    main()
