"""Pack the training photos small enough to travel to a lent GPU machine.

    python -m train.pack [--data DIR] [--out .data/train] [--quality 88] [--every bsds500=4]

A device run receives the working tree and its carried folders, 64 MiB in all,
and the full training sets are about 120 MB. So each photo is reduced the way
learned-compression training sets usually are (Ballé et al. 2018 train on
about a million downsampled web photos): a photo whose shorter side is at least
2 × ``--min-side`` px is downscaled by 2 with a Lanczos filter, which averages
away sensor noise and old JPEG blocking, and every photo is stored as
a JPEG of high quality without chroma subsampling. A photo still smaller than
``--min-side`` after that is left out, since training crops it to 256 px.
A set is a top-level folder of ``--data``; a packed photo is named after its
path below ``--data`` (``bsds500-12003.jpg``). ``--every SET=K`` keeps only
every K-th photo of a set (in path order); the default thins bsds500, the
largest and noisiest set (500 small JPEGs).

With the defaults the result is 543 photos, 23 MiB: the set the
0.3.2 channel-wise weights were fine-tuned on (see their model card).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageOps

from train.data import IMAGE_SUFFIXES
from train.train import default_train_data


def pack(data: Path, out: Path, quality: int, min_side: int, every: dict[str, int]) -> tuple[int, int]:
    """Write the packed photos into `out`; returns (photos written, bytes written)."""
    out.mkdir(parents=True, exist_ok=True)
    written = size = 0
    by_set: dict[str, int] = {}
    inside_out = out.resolve()
    photos = (
        p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and inside_out not in p.resolve().parents
    )
    for path in sorted(photos):
        relative = path.relative_to(data)
        source = relative.parts[0] if len(relative.parts) > 1 else ""
        index = by_set[source] = by_set.get(source, -1) + 1
        if index % every.get(source, 1):
            continue
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
        if min(image.size) >= 2 * min_side:
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        if min(image.size) < min_side:
            continue
        target = out / ("-".join(relative.with_suffix("").parts) + ".jpg")
        if target.exists():
            raise ValueError(f"two photos pack to {target.name}, the second is {path}")
        image.save(target, quality=quality, subsampling=0)
        written += 1
        size += target.stat().st_size
    return written, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.pack", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_train_data()), help="training sets folder")
    parser.add_argument("--out", type=Path, default=Path(".data/train"))
    parser.add_argument("--quality", type=int, default=88, help="JPEG quality (default %(default)s)")
    parser.add_argument("--min-side", type=int, default=256, help="the training crop (default %(default)s)")
    parser.add_argument("--every", default="bsds500=4", help="SET=K,...: keep every K-th photo of SET")
    args = parser.parse_args(argv)
    try:
        every = {name: int(k) for name, k in (item.split("=") for item in args.every.split(",") if item)}
    except ValueError:
        parser.error(f"--every takes SET=K,... with whole numbers K, not {args.every!r}")
    if min(every.values(), default=1) < 1:
        parser.error("--every: K must be at least 1")
    if not args.data.is_dir():
        raise SystemExit(f"train.pack: no training sets folder at {args.data}")
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"train.pack: {args.out} is not empty; choose an empty or new folder")
    try:
        written, size = pack(args.data, args.out, args.quality, args.min_side, every)
    except ValueError as error:
        raise SystemExit(f"train.pack: {error}") from None
    print(f"train.pack: {written} photos, {size / 2**20:.1f} MiB in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
