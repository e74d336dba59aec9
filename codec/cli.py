"""The aecodec command line: encode, decode, info, eval, models.

Conventions of cjpeg/cwebp/avifenc: ``-`` is stdin or stdout; an existing output
is never overwritten without ``-f``; outputs are written to a temporary file in
the same folder and renamed into place, so a failure leaves nothing behind;
errors are one line on stderr with exit code 1 (2 for usage errors), and a
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from codec import __version__, api, container, metadata, refine, weights
from codec.entropy import CODERS
from codec.errors import AecError, AecWarning, MetadataError, UnsupportedImageError
from codec.image import describe_profile, open_image, to_array
from codec.metrics import bits_per_pixel, psnr
from codec.models import ARCHITECTURES

MAX_IMAGE_FILE_BYTES = 1 << 30


class UsageError(AecError):
    """A problem with the command line itself (exit code 2)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_usage(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.showwarning = _show_warning
            args.run(args)
        return 0
    except KeyboardInterrupt:
        print("aecodec: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 — every failure becomes one line
        if args.debug:
            raise
        print(f"aecodec: error: {_describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"aecodec: warning: {str(message).strip().splitlines()[0]}", file=sys.stderr)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    if isinstance(error, MemoryError):
        return "out of memory"
    message = str(error).strip().splitlines()
    return message[0] if message else type(error).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aecodec", description="Learned image codec.")
    parser.add_argument("--version", action="version", version=f"aecodec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run the networks")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    output.add_argument("--quiet", action="store_true", help="print nothing on success")
    choice = argparse.ArgumentParser(add_help=False)
    choice.add_argument(
        "-q",
        "--quality",
        type=float,
        default=None,
        help=f"1..100, higher is better (default {api.DEFAULT_QUALITY}); its λ is clamped to the weights' trained range",
    )
    choice.add_argument("--model", default=api.DEFAULT_MODEL, choices=sorted(ARCHITECTURES), help="default %(default)s")
    choice.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="optimize this image's latent for STEPS gradient steps before coding: files decode as usual, "
        "at a lower rate-distortion cost, for much slower encoding; with a target, every trial is refined "
        "(default 0: off; the benchmark uses 40)",
    )
    for kind, field in metadata.FIELDS.items():
        choice.add_argument(
            f"--ignore-{kind}",
            dest="strip",
            action="append_const",
            const=kind,
            default=[],
            help=f"do not keep the input's {metadata.NAMES[field]} (kept by default, as avifenc does)",
        )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("encode", parents=[common, output, choice], help="compress an image into an .aec file")
    p.add_argument("input", help="image file, or - for stdin")
    p.add_argument("output", help=".aec file, or - for stdout")
    p.add_argument("--coder", default="range", choices=CODERS, help="entropy coder (default %(default)s)")
    for kind, field in metadata.FIELDS.items():
        upright = "" if kind == "icc" else "; its orientation is set to 1 if the pixels are turned upright"
        p.add_argument(
            f"--{kind}",
            metavar="FILE",
            help=f"store this file as the {metadata.NAMES[field]}, instead of the input's (as avifenc's --{kind}){upright}",
        )
    target = p.add_mutually_exclusive_group()
    target.add_argument("--target-bpp", type=float, help="search the rate for at most this many bits per pixel")
    target.add_argument("--target-psnr", type=float, help="search the rate for at least this PSNR (dB)")
    p.set_defaults(run=run_encode)

    p = sub.add_parser("decode", parents=[common, output], help="decompress an .aec file into an image")
    p.add_argument("input", help=".aec file, or - for stdin")
    p.add_argument("output", help="image file (format from its extension), or - for PNG on stdout")
    p.set_defaults(run=run_decode)

    p = sub.add_parser("info", parents=[common], help="show the header of an .aec file")
    p.add_argument("input", help=".aec file, or - for stdin")
    p.set_defaults(run=run_info)

    p = sub.add_parser("eval", parents=[common, choice], help="encode and decode images in memory; print bpp and PSNR")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--coder", default="range", choices=CODERS)
    p.set_defaults(run=run_eval)

    p = sub.add_parser("models", parents=[common], help="list the installed models and rate points")
    p.set_defaults(run=run_models)

    p = sub.add_parser("bench", parents=[common], help="Kodak benchmark: our models and the classical codecs")
    p.add_argument(
        "--data", type=Path, default=None, help="Kodak folder (default $AECODEC_KODAK, then ../shared/datasets/kodak)"
    )
    p.add_argument("--download", action="store_true", help="fetch Kodak into --data (checked by SHA-256) if missing")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--codecs", default=None, help="comma-separated classical codecs (default: all available)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder (default %(default)s)")
    p.add_argument("--readme", action="store_true", help="regenerate the results table in README.md")
    p.add_argument("--update-cards", action="store_true", help="write Kodak means into the model cards")
    p.set_defaults(run=run_bench)

    p = sub.add_parser("plot", parents=[common], help="rate–distortion plots from a bench results folder")
    p.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--image", type=Path, default=None, help="image for the visual comparison (default kodim23)")
    p.set_defaults(run=run_plot)
    return parser


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")


def _check_quality(args: argparse.Namespace) -> None:
    """Check -q and give it its default (None means not given, so targets can refuse it)."""
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {args.quality:g}")
    if getattr(args, "target_bpp", None) is not None or getattr(args, "target_psnr", None) is not None:
        if args.quality is not None:
            raise UsageError("-q cannot be combined with --target-bpp or --target-psnr")
        for flag, target in (("--target-bpp", args.target_bpp), ("--target-psnr", args.target_psnr)):
            if target is not None and not (math.isfinite(target) and target > 0):
                raise UsageError(f"{flag} must be a positive number, got {target:g}")
    elif args.quality is None:
        args.quality = float(api.DEFAULT_QUALITY)
    if not 0 <= args.refine <= refine.MAX_STEPS:
        raise UsageError(f"--refine must be between 0 and {refine.MAX_STEPS} steps, got {args.refine}")


def _read_input(path: str, limit: int) -> bytes:
    """All of a file or stdin, refusing anything larger than `limit` bytes."""
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    if len(data) > limit:
        raise AecError(f"{path}: input larger than {limit} bytes")
    return data


def _check_output(args: argparse.Namespace) -> None:
    """Fail before any work if the output cannot be written as asked."""
    if args.output == "-":
        if sys.stdout is None:
            raise UsageError("standard output is closed")
        return
    out = Path(args.output)
    if out.is_dir() or args.output.endswith(("/", os.sep)):
        raise UsageError(f"{args.output}: is a directory (name the output file)")
    if out.exists():
        if args.input != "-" and Path(args.input).exists() and os.path.samefile(args.input, out):
            raise UsageError(f"{out}: output is the same file as the input")
    if (out.exists() or out.is_symlink()) and not args.force:
        raise UsageError(f"{out}: already exists (use -f to overwrite)")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such directory")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{out.parent}: permission denied")


def _write_output(path: str, data: bytes, force: bool) -> None:
    """Write all of `data` or nothing: temporary file in the same folder, then rename."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    out = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as error:
        raise AecError(f"{out}: cannot write: {error.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes owner-only files; outputs get the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, out)
        else:
            os.link(tmp, out)  # fails if `out` appeared meanwhile: never clobber
            os.unlink(tmp)
    except FileExistsError:
        raise UsageError(f"{out}: already exists (use -f to overwrite)") from None
    except OSError as error:  # e.g. the disk filled up: the temporary file goes, the output stays as it was
        raise AecError(f"{out}: cannot write: {error.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _encode_at_quality(image: Image.Image, args: argparse.Namespace, **payloads: bytes) -> bytes:
    """`image` coded with the -q, --model, --coder, --device, --refine and --ignore-* options, and
    `payloads` (icc_profile, exif, xmp) stored instead of the image's own."""
    return api.encode(
        image,
        quality=args.quality,
        model=args.model,
        coder=args.coder,
        device=args.device,
        refine_steps=args.refine,
        strip=args.strip,
        **payloads,
    )


def _read_payloads(args: argparse.Namespace) -> dict[str, bytes]:
    """The files of --icc, --exif and --xmp, as encode's keyword arguments (icc_profile, exif, xmp)."""
    payloads = {}
    for kind, field in metadata.FIELDS.items():
        path = getattr(args, kind)
        if path is None:
            continue
        if kind in args.strip:
            raise UsageError(f"--{kind} cannot be combined with --ignore-{kind}")
        if path == "-":
            raise UsageError(f"--{kind}: give a file (standard input is for the image)")
        with open(path, "rb") as f:
            data = f.read(metadata.LIMITS[field] + 1)
        name, limit = metadata.NAMES[field], metadata.LIMITS[field]
        if not data:
            raise AecError(f"{path}: empty (--ignore-{kind} leaves the input's {name} out)")
        if len(data) > limit:
            raise AecError(f"{path}: larger than {limit} bytes, the most a file holds of {name}")
        payloads[field] = data
    return payloads


def run_encode(args: argparse.Namespace) -> None:
    _check_device(args.device)
    _check_quality(args)
    payloads = _read_payloads(args)
    _check_output(args)
    image = _open_input(args.input)
    try:
        data = _encoded_image(image, args, payloads)
    except MetadataError as error:
        raise AecError(f"{getattr(args, error.kind)}: {error}") from None
    _write_output(args.output, data, args.force)
    if not args.quiet:
        header = api.read_header(data)
        bpp = bits_per_pixel(len(data), header.height, header.width)
        print(
            f"{args.input} → {args.output}: {header.width}×{header.height}, {len(data)} bytes, "
            f"{bpp:.4f} bpp ({header.model}, λ={header.rate:.4g})",
            file=sys.stderr,
        )


def _encoded_image(image: Image.Image, args: argparse.Namespace, payloads: dict[str, bytes]) -> bytes:
    """`image` coded at -q, or searched for --target-bpp / --target-psnr (warning if not reached)."""
    if args.quality is not None:
        return _encode_at_quality(image, args, **payloads)
    data, bpp, quality = api.encode_to_target(
        image,
        args.target_bpp,
        args.target_psnr,
        model=args.model,
        coder=args.coder,
        device=args.device,
        refine_steps=args.refine,
        strip=args.strip,
        **payloads,
    )
    if args.target_bpp is not None and bpp > args.target_bpp:
        warnings.warn(
            f"--target-bpp {args.target_bpp:g} not reached: the lowest rate gives {bpp:.4f} bpp"
            + _metadata_note(api.read_header(data)),
            AecWarning,
            stacklevel=2,
        )
    if args.target_psnr is not None and quality < args.target_psnr:
        warnings.warn(
            f"--target-psnr {args.target_psnr:g} not reached: the highest rate gives {quality:.2f} dB",
            AecWarning,
            stacklevel=2,
        )
    return data


def _open_input(path: str) -> Image.Image:
    """The input image, read in full; errors name the file."""
    try:
        return open_image(_read_input(path, MAX_IMAGE_FILE_BYTES))
    except UnsupportedImageError as error:
        raise UnsupportedImageError(f"{'standard input' if path == '-' else path}: {error}") from None


# What decode writes, by extension, with Pillow's save options: lossless formats as they are, WebP
# lossless, JPEG at djpeg-like fidelity (quality 95, no chroma subsampling: it is a re-compression).
OUTPUT_FORMATS: dict[str, tuple[str, dict]] = {
    ".png": ("PNG", {}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
    ".ppm": ("PPM", {}),
    ".pnm": ("PPM", {}),
    ".pgm": ("PPM", {}),  # gray files only
    ".tga": ("TGA", {}),
    ".qoi": ("QOI", {}),
    ".webp": ("WEBP", {"lossless": True}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
}

METADATA_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "JPEG"})  # those that hold an ICC profile, EXIF and XMP
JPEG_SEGMENT_LIMITS = {"exif": 65533, "xmp": 65533 - 29}  # one APP1 marker segment each (Pillow writes no extended XMP)
# Tags of a TIFF's first IFD that describe its own pixel layout and colour (baseline TIFF 6.0 and
# the ICC profile): EXIF from a camera may carry some (ImageWidth, ImageLength, ...) for its JPEG,
# and merged into the TIFF that decode writes they would corrupt it.
TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284, 290, 291}
    | {292, 293, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347}
    | set(range(512, 522))
    | {529, 530, 531, 532, 34675}
)


def _saved(image: Image.Image, image_format: str, options: dict[str, object]) -> bytes:
    """The bytes of `image` saved as `image_format`, with the ICC profile, EXIF and XMP in its info
    where the format holds them. Should Pillow fail to write those (TIFF re-parses EXIF, which a
    crafted file can make fail), the image is written without EXIF and XMP, else without any
    metadata, with a warning."""
    stored = {key: image.info.pop(key) for key in metadata.NAMES if image.info.get(key)}
    profile_only = {key: value for key, value in stored.items() if key == "icc_profile"}
    attempts = [stored]
    for fewer in (profile_only, {}):
        if fewer != attempts[-1]:
            attempts.append(fewer)
    failure: Exception | None = None  # the first attempt's, which the warning names
    for number, kept in enumerate(attempts):
        try:
            with warnings.catch_warnings():
                if number:
                    warnings.simplefilter("ignore", AecWarning)  # said on the first attempt
                data = _encoded(image, image_format, options, kept)
        except Exception as error:  # noqa: BLE001 — Pillow's metadata writers; the next attempt leaves more out
            if kept is attempts[-1]:
                raise
            failure = failure or error
            continue
        if number:
            _not_written([key for key in stored if key not in kept], f"Pillow failed on {{it}} ({failure})")
        return data
    raise AssertionError("the last attempt returns or raises")


def _not_written(keys: Iterable[str], because: str) -> None:
    """Warn that the file's metadata of `keys` (image.info's names) is not written, `because` (in
    which "{it}" and "{one}" read "it" and "one" for one kind, "them" for several)."""
    names = [metadata.NAMES[key] for key in keys]
    one = len(names) == 1
    reason = because.replace("{it}", "it" if one else "them").replace("{one}", "one" if one else "them")
    message = f"the file's {metadata.listed(names)} {'is' if one else 'are'} not written: {reason}"
    warnings.warn(message, AecWarning, stacklevel=4)


def _encoded(image: Image.Image, image_format: str, options: dict[str, object], kept: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options, **_metadata_options(kept, image_format, image.mode))
    return buffer.getvalue()


def _metadata_options(stored: dict[str, bytes], image_format: str, mode: str) -> dict[str, object]:
    """Pillow save options that write `stored` (image.info's "icc_profile", "exif", "xmp") into a
    file of `image_format` with pixels of `mode`; a warning names each one the format cannot hold."""
    keep = ", ".join(sorted(METADATA_FORMATS)).lower()
    if stored and image_format not in METADATA_FORMATS:
        _not_written(stored, f"{image_format} cannot hold {{one}} (use {keep})")
        return {}
    options: dict[str, object] = {}
    for key, value in stored.items():
        if key == "icc_profile" and image_format == "WEBP" and mode == "L":  # WebP stores gray as RGB
            why = f"the file's gray ICC profile is not written: WebP holds no gray images (use {keep})"
        elif image_format == "JPEG" and len(value) > JPEG_SEGMENT_LIMITS.get(key, len(value)):
            why = f"the file's {metadata.NAMES[key]} is not written: it is larger than one JPEG marker segment holds"
        else:
            options[key] = value
            continue
        warnings.warn(why, AecWarning, stacklevel=5)
    if "xmp" in options and image_format == "PNG":  # an iTXt chunk, where Adobe and Pillow read it
        chunks = PngImagePlugin.PngInfo()
        chunks.add_itxt("XML:com.adobe.xmp", options.pop("xmp").decode("utf-8"))
        options["pnginfo"] = chunks
    if image_format == "TIFF" and ("exif" in options or "xmp" in options):  # both become the TIFF's own tags
        tags = Image.Exif()
        if "exif" in options:
            tags.load(options.pop("exif"))
            for tag in TIFF_LAYOUT_TAGS & set(tags):
                del tags[tag]
        if "xmp" in options:
            tags[700] = options.pop("xmp")  # XMLPacket
        options["exif"] = tags
    return options


def _output_format(path: str) -> tuple[str, dict]:
    Image.init()  # registers Pillow's writers
    if path == "-":
        return OUTPUT_FORMATS[".png"]
    extension = Path(path).suffix.lower()
    if extension not in OUTPUT_FORMATS or OUTPUT_FORMATS[extension][0] not in Image.SAVE:
        raise UsageError(
            f"{path}: cannot write images with extension {extension!r} "
            f"(use one of {', '.join(e for e in OUTPUT_FORMATS if OUTPUT_FORMATS[e][0] in Image.SAVE)})"
        )
    return OUTPUT_FORMATS[extension]


def run_decode(args: argparse.Namespace) -> None:
    _check_device(args.device)
    _check_output(args)
    image_format, options = _output_format(args.output)
    data = _read_input(args.input, container.MAX_FILE_BYTES)
    if Path(args.output).suffix.lower() == ".pgm" and api.read_header(data).mode != "L":
        raise UsageError(f"{args.output}: a PGM holds gray images, and this file decodes to RGB (use .ppm or .png)")
    image = api.decode(data, device=args.device)
    if image_format == "QOI":  # QOI stores RGB(A) only
        image = image.convert("RGB")
    _write_output(args.output, _saved(image, image_format, options), args.force)
    if not args.quiet:
        print(f"{args.input} → {args.output}: {image.width}×{image.height} {image.mode}", file=sys.stderr)


def run_info(args: argparse.Namespace) -> None:
    data = _read_input(args.input, container.MAX_FILE_BYTES)
    header = api.read_header(data)
    streams = container.unpack(data)[1]
    try:
        point = api.rate_point_of(header)
        path = point.weights_path
        installed = f"installed ({path.name})" if path.is_file() else f"card present, {path.name} missing"
    except AecError as error:
        installed = f"not usable: {error}"
    names = ARCHITECTURES[header.model].stream_names if header.model in ARCHITECTURES else ()
    lines = [
        f"file: {args.input}",
        f"format version: {header.version}",
        f"model: {header.model}",
        f"weights: {header.fingerprint.hex()} ({installed})",
        f"rate parameter (lambda): {header.rate:.6g}",
        f"entropy coder: {header.coder}",
        f"colour mode: {'grayscale' if header.mode == 'L' else 'RGB'}",
        f"size: {header.width}×{header.height}",
        f"ICC profile: {_profile_description(header.icc_profile)}",
        f"EXIF: {f'{len(header.exif)} bytes' if header.exif else 'none'}",
        f"XMP: {f'{len(header.xmp)} bytes' if header.xmp else 'none'}",
    ]
    for i, (shape, stream) in enumerate(zip(header.latent_shapes, streams)):
        name = names[i] if i < len(names) else str(i)
        lines.append(f"stream {name}: latent {shape[0]}×{shape[1]}×{shape[2]}, {len(stream)} bytes")
    lines += [
        f"file size: {len(data)} bytes",
        f"bpp: {bits_per_pixel(len(data), header.height, header.width):.4f}",
    ]
    print("\n".join(lines))


def _profile_description(icc: bytes) -> str:
    if not icc:
        return "none (sRGB)"
    described = describe_profile(icc)  # shown, not used: an unreadable profile is still reported
    return f"{described[0] if described else 'unreadable'}, {len(icc)} bytes"


def run_eval(args: argparse.Namespace) -> None:
    _check_device(args.device)
    _check_quality(args)
    rate = api.rate_for_quality(args.model, args.quality)
    print(f"model {args.model}, quality {args.quality:g} → λ={rate:.4g}, coder {args.coder}")
    print(f"{'image':<28} {'size':>11} {'bytes':>9} {'bpp':>7} {'PSNR dB':>8}")
    for path in args.images:
        image = _open_input(path)
        reference, mode = to_array(image)
        data = _encode_at_quality(image, args)
        decoded = np.asarray(api.decode(data, device=args.device).convert("RGB"))
        if mode == "L":
            reference = np.asarray(Image.fromarray(reference).convert("L").convert("RGB"))
        height, width = reference.shape[:2]
        bpp = bits_per_pixel(len(data), height, width)
        note = _metadata_note(api.read_header(data))
        print(
            f"{Path(path).name:<28} {f'{width}×{height}':>11} {len(data):>9} {bpp:>7.4f} "
            f"{psnr(reference, decoded):>8.2f}{note}"
        )


def _metadata_note(header: container.Header) -> str:
    """What of a file's bytes is metadata, for eval's table and --target-bpp's warning:
    '  (bytes include …)' or ''."""
    held = [
        f"{len(getattr(header, key))} bytes of {name}" for key, name in metadata.NAMES.items() if getattr(header, key)
    ]
    return f"  (bytes include {metadata.listed(held)})" if held else ""


def run_models(args: argparse.Namespace) -> None:
    points = weights.rate_points()
    if not points:
        raise AecError(f"no weights installed in {weights.weights_dir()}")
    for point in points:
        kodak = point.card.get("kodak", {})
        if not kodak:
            measured = "not measured"
        elif point.variable_rate:
            bpps, psnrs = kodak["bpp"], kodak["psnr"]
            measured = f"Kodak {min(bpps):.3f}..{max(bpps):.3f} bpp, {min(psnrs):.2f}..{max(psnrs):.2f} dB"
        else:
            measured = f"Kodak {kodak['bpp']:.3f} bpp, {kodak['psnr']:.2f} dB"
        rate = f"{point.lambdas[0]:g}..{point.lambdas[-1]:g}" if point.variable_rate else f"{point.lmbda:g}"
        default = "  (default)" if point.model == api.DEFAULT_MODEL else ""
        print(f"{point.model:<24} λ={rate:<15} N={point.card['N']:<4} M={point.card['M']:<4} {measured}{default}")


def run_bench(args: argparse.Namespace) -> None:
    from benchmarks import data, harness

    _check_device(args.device)
    directory = args.data or data.default_kodak()
    if args.download:
        directory = data.download_kodak(directory or Path("kodak"))
    images = data.kodak_images(directory, args.limit)
    names = args.codecs.split(",") if args.codecs else None
    summary = harness.run(images, args.out, args.device, names, update_cards=args.update_cards)
    print(harness.readme_table(summary))
    if args.readme:
        harness.update_readme(summary)


def run_plot(args: argparse.Namespace) -> None:
    from benchmarks import data, plot

    if not (args.results / "summary.json").is_file():
        raise AecError(f"{args.results}: no summary.json (run aecodec bench first)")
    paths = plot.rd_plot(args.results)
    image = args.image or (data.default_kodak() or Path(".")) / "kodim23.png"
    if image.is_file():
        paths.append(plot.visual_comparison(image, args.results))
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    sys.exit(main())
