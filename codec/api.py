"""encode() and decode(): the whole data path, in one direction each.

encode: image → 8-bit RGB array → edge padding → analysis transform (tiled)
→ quantization and entropy coding (model.compress_latent) → container.
decode: container → entropy decoding (model.decompress_latent) → synthesis
transform (tiled, cropped) → image in the original colour mode.

Quality. ``quality`` is a number from 1 to 100, higher is better, as in cjpeg
and cwebp. It maps to a target λ log-uniformly over CompressAI's λ range,

    λ(q) = 0.0018 · 100 ** ((q − 1) / 99),   so λ(1) = 0.0018 and λ(100) = 0.18,

A variable-rate model (gain units) codes with λ(q) itself, clamped to the λ
range it was trained for, so quality is continuous; the file records that λ as
its rate parameter. For a model shipped as fixed-λ rate points, the encoder
uses the point whose λ is nearest to λ(q) on a log scale. When a model has
both, the variable-rate weights are used.

Refinement. ``refine_steps`` > 0 optimizes the latent of this one image before
coding it (codec/refine.py): smaller files for the same quality, the same
decoder, at the price of encoding time. Both the plain and the refined latent
are coded and decoded, and the file with the lower real J = λ·255²·MSE + bpp
is kept, so a refined encode is never worse than a plain one by that measure.

Targets. `encode_to_target` searches the rate for a target bpp (the highest
rate whose file is at most that many bits per pixel) or a target PSNR (the
lowest rate that reaches it), by bisection on log λ for a variable-rate model,
as tfci's --target_bpp does, and over the rate points otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
from PIL import Image

from codec import container, metadata, refine, tiling, weights
from codec.container import Header
from codec.entropy import CODERS, EntropyDecodeError
from codec.errors import FormatError, WeightsError
from codec.image import GRAY, ImageLike, check_size, orientation, pad, to_array, to_image
from codec.metadata import Metadata
from codec.metrics import psnr
from codec.models import ARCHITECTURES, PAD_MULTIPLE, LatentCodecModel

DEFAULT_MODEL = "minnen2020-channelwise"
DEFAULT_QUALITY = 75
LAMBDA_MIN, LAMBDA_MAX = 0.0018, 0.18


def lambda_for_quality(quality: float) -> float:
    """The λ that quality 1..100 asks for (log-uniform over CompressAI's range)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    return LAMBDA_MIN * (LAMBDA_MAX / LAMBDA_MIN) ** ((quality - 1) / 99)


def select_rate_point(model: str, quality: float) -> weights.RatePoint:
    """The weights `model` codes quality with: its variable-rate weights, else the rate point
    nearest to λ(quality) on a log scale."""
    if model not in ARCHITECTURES:
        raise WeightsError(f"unknown model {model!r}; known models: {', '.join(ARCHITECTURES)}")
    points = weights.rate_points(model)
    if not points:
        installed = sorted({p.model for p in weights.rate_points()})
        hint = f"; installed models: {', '.join(installed)}" if installed else ""
        raise WeightsError(f"no weights for model {model!r} in {weights.weights_dir()}{hint}")
    variable = [p for p in points if p.variable_rate]
    if variable:
        return variable[0]
    target = math.log(lambda_for_quality(quality))
    return min(points, key=lambda p: abs(math.log(p.lmbda) - target))


def rate_for_quality(model: str, quality: float) -> float:
    """The rate parameter λ a file of `model` at `quality` is coded with."""
    return select_rate_point(model, quality).rate_for(lambda_for_quality(quality))


def encode(
    image: ImageLike,
    quality: float = DEFAULT_QUALITY,
    model: str = DEFAULT_MODEL,
    coder: str = "range",
    device: str = "cpu",
    tile: int = tiling.TILE,
    refine_steps: int = 0,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | str | None = None,
    strip: Collection[str] = (),
) -> bytes:
    """Compress a PIL image or uint8 array (H×W gray, H×W×3 RGB) into .aec bytes.

    `tile` (pixels, a multiple of 16) bounds memory; it does not change the format.
    `refine_steps`: optimization steps spent on this image's latent (0: none).
    A PIL image's ICC profile, EXIF and XMP are stored in the file (codec/metadata.py; an sRGB
    profile is not; when the pixels were turned upright, the orientation stored is 1).
    `icc_profile`, `exif`, `xmp`: bytes to store instead (b"": none; for a numpy array, the only
    source); a MetadataError if they cannot be. `strip` names kinds to leave out: 'icc', 'exif',
    'xmp'.
    """
    if coder not in CODERS:
        raise ValueError(f"unknown entropy coder {coder!r}; choose from {', '.join(CODERS)}")
    array, mode, turned = _checked_array(image)
    kept = metadata.collect(image, mode, turned, icc_profile, exif, xmp, strip)
    point = select_rate_point(model, quality)
    net = weights.load(point, device)
    rate = point.rate_for(lambda_for_quality(quality))
    return encode_with(net, array, mode, point.fingerprint, rate, coder, device, tile, refine_steps, kept)


def _checked_array(image: ImageLike) -> tuple[np.ndarray, str, bool]:
    """The image's upright uint8 RGB pixels, the colour mode to decode to, and whether turning
    them upright changed them (the stored metadata then says orientation 1)."""
    turn = orientation(image, warn=True)
    array, mode = to_array(image, turn)
    check_size(array.shape[1], array.shape[0])
    return array, mode, turn != 1


def encode_with(
    net: LatentCodecModel,
    array: np.ndarray,
    mode: str,
    fingerprint: bytes,
    rate: float,
    coder: str = "range",
    device: str = "cpu",
    tile: int = tiling.TILE,
    refine_steps: int = 0,
    kept: Metadata = metadata.NONE,
) -> bytes:
    """The data path of `encode` for a model in hand (e.g. one being trained) and a uint8 RGB array;
    `kept`: the colour profile and metadata stored in the file with its pixels."""
    height, width = array.shape[:2]
    padded = pad(array, PAD_MULTIPLE)
    refine.check(refine_steps, *padded.shape[:2])
    del array  # the padded copy holds the image
    y = net.gained(tiling.analysis(net.g_a, padded, device, tile), rate)
    shapes = net.latent_shapes(*padded.shape[:2])
    header = Header(
        model=net.name,
        fingerprint=fingerprint,
        rate=rate,
        coder=coder,
        mode=mode,
        height=height,
        width=width,
        latent_shapes=tuple(shapes[name] for name in net.stream_names),
        icc_profile=kept.icc_profile,
        exif=kept.exif,
        xmp=kept.xmp,
    )
    data = container.pack(header, net.compress_latent(y, coder))
    if refine_steps:  # keep the refined file only if its real loss is lower
        y = refine.refine(net, y, padded, height, width, rate, refine_steps, mode, tile)
        refined = container.pack(header, net.compress_latent(y, coder))
        image = padded[:height, :width]
        data = min(data, refined, key=lambda candidate: coded_loss(net, candidate, image, tile))
    return data


def coded_loss(net: LatentCodecModel, data: bytes, image: np.ndarray, tile: int = tiling.TILE) -> float:
    """J = λ·255²·MSE + bpp of a file: bpp from its bytes, MSE (on the 0–1 scale) of the 8-bit
    pixels it decodes to (RGB, or gray) against the uint8 RGB `image` (for a gray file, its three
    channels equal), λ the file's rate parameter."""
    header, streams = container.unpack(data)
    decoded, reference = as_decoded(decode_with(net, header, streams, tile), image, header.mode)
    mse = float(np.mean((decoded.astype(np.float64) - reference) ** 2)) / 255**2
    return header.rate * 255**2 * mse + len(data) * 8 / (header.height * header.width)


def as_decoded(decoded: np.ndarray, image: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's uint8 RGB pixels and the uint8 RGB `image`, both in the colour mode the file
    decodes to: unchanged for RGB; for gray, the decoded luma and the image's one channel."""
    if mode != GRAY:
        return decoded, image
    return np.asarray(to_image(decoded, mode)), image[..., 0]


def read_header(data: bytes) -> Header:
    """Validate a file and return its header (without decoding pixels)."""
    return container.unpack(data)[0]


def rate_point_of(header: Header) -> weights.RatePoint:
    """The installed weights a file was made with, or an error naming what is missing."""
    if header.model not in ARCHITECTURES:
        raise FormatError(f"unknown model {header.model!r} (this aecodec knows {', '.join(ARCHITECTURES)})")
    for point in weights.decodable_points(header.model):
        if point.fingerprint == header.fingerprint:
            if not point.accepts(header.rate):
                expected = f"range {point.lambdas[0]:g}..{point.lambdas[-1]:g}" if point.variable_rate else point.lmbda
                raise FormatError(f"rate parameter {header.rate:g} does not match the weights' λ {expected}")
            return point
    raise WeightsError(
        f"file was made with {header.model} weights {header.fingerprint.hex()} (λ={header.rate:g}), "
        f"which are not installed in {weights.weights_dir()}"
    )


def decode(data: bytes, device: str = "cpu", tile: int = tiling.TILE) -> Image.Image:
    """Decompress .aec bytes into a PIL image (mode 'RGB' or 'L', as encoded), with the file's ICC
    profile, EXIF and XMP, if any, in ``info["icc_profile"]``, ``info["exif"]`` and ``info["xmp"]``
    (as Pillow reads them from a JPEG). Pillow writes the profile into PNG and TIFF files by
    itself; pass the others to ``save`` (the CLI's decode does, for each format that holds them)."""
    header, streams = container.unpack(data)
    net = weights.load(rate_point_of(header), device)
    image = to_image(decode_with(net, header, streams, tile), header.mode)
    stored = Metadata(header.icc_profile, header.exif, header.xmp)
    image.info.update(metadata.image_info(metadata.usable(stored, header.mode)))
    return image


def decode_with(net: LatentCodecModel, header: Header, streams: list[bytes], tile: int = tiling.TILE) -> np.ndarray:
    """The data path of `decode` for a model in hand: the uint8 (H, W, 3) pixels."""
    padded_height = -(-header.height // PAD_MULTIPLE) * PAD_MULTIPLE
    padded_width = -(-header.width // PAD_MULTIPLE) * PAD_MULTIPLE
    expected = net.latent_shapes(padded_height, padded_width)
    if header.latent_shapes != tuple(expected[name] for name in net.stream_names):
        raise FormatError("latent shapes in the stream table do not match the model and image size")
    try:
        y_hat = net.decompress_latent(
            streams, padded_height, padded_width, header.coder, terminated=header.streams_terminated
        )
    except EntropyDecodeError as error:
        raise FormatError(f"entropy-coded stream is corrupt: {error}") from None
    y_hat = net.ungained(y_hat, header.rate)
    return tiling.synthesis(net.g_s, y_hat, header.height, header.width, tile)


def encode_to_target(
    image: ImageLike,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    model: str = DEFAULT_MODEL,
    coder: str = "range",
    device: str = "cpu",
    steps: int = 10,
    refine_steps: int = 0,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | str | None = None,
    strip: Collection[str] = (),
) -> tuple[bytes, float, float]:
    """The file closest to a target: at most `target_bpp`, or at least `target_psnr` dB, at the
    fewest bits. Returns (file bytes, its bpp, its PSNR). If no rate meets the target, the nearest
    end of the range is returned (the caller can compare). bpp counts the whole file, metadata
    included. `icc_profile`, `exif`, `xmp` and `strip` as for `encode`."""
    if (target_bpp is None) == (target_psnr is None):
        raise ValueError("give exactly one of target_bpp and target_psnr")
    array, mode, turned = _checked_array(image)
    kept = metadata.collect(image, mode, turned, icc_profile, exif, xmp, strip)
    point = select_rate_point(model, DEFAULT_QUALITY)
    height, width = array.shape[:2]

    def trial(point: weights.RatePoint, rate: float) -> tuple[bytes, float, float, bool]:
        net = weights.load(point, device)
        data = encode_with(
            net, array, mode, point.fingerprint, rate, coder, device, refine_steps=refine_steps, kept=kept
        )
        header, streams = container.unpack(data)
        bpp = len(data) * 8 / (height * width)
        decoded, reference = as_decoded(decode_with(net, header, streams), array, mode)
        quality = psnr(reference, decoded)
        meets = bpp <= target_bpp if target_bpp is not None else quality >= target_psnr
        return data, bpp, quality, meets

    if point.variable_rate:  # bpp and PSNR both grow with λ: bisect on log λ
        low, high = math.log(point.lambdas[0]), math.log(point.lambdas[-1])
        results = {rate: trial(point, rate) for rate in (point.lambdas[0], point.lambdas[-1])}
        for _ in range(steps):
            middle = 0.5 * (low + high)
            results[math.exp(middle)] = trial(point, math.exp(middle))
            meets = results[math.exp(middle)][3]
            too_far = not meets if target_bpp is not None else meets
            low, high = (low, middle) if too_far else (middle, high)
    else:
        results = {p.lmbda: trial(p, p.lmbda) for p in weights.rate_points(model)}
    met = [(rate, r) for rate, r in results.items() if r[3]]
    if target_bpp is not None:
        rate, best = max(met) if met else min(results.items())
    else:
        rate, best = min(met) if met else max(results.items())
    return best[0], best[1], best[2]
