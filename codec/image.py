"""From whatever the user has to an 8-bit RGB array, and back.

Conventions (those of cjpeg/cwebp/avifenc where they apply):

* Anything Pillow opens is accepted (PNG, JPEG, WebP, TIFF, BMP, PPM/PGM, …);
  the EXIF orientation (else XMP's, as Pillow reads them) is applied before coding.
* Grayscale stays grayscale: it is coded as RGB with equal channels and
  decoded back to one channel.
* Palette, CMYK, YCbCr and other colour modes become RGB. A CMYK image with an
  embedded CMYK profile is converted through it to sRGB by littlecms, with
  relative colorimetric intent and black point compensation (Photoshop's
  defaults for viewing print files), so that print-ready files keep their
  colours; without a usable one, Pillow's naive conversion is used (with a
  warning if a profile was there).
* 16-bit samples are reduced to 8 bits (with a warning); 32-bit integer and
  floating-point samples are refused.
* Alpha that is fully opaque carries no information and is dropped; any other
  alpha, including a PNG colour key (tRNS) that some pixel matches, is refused,
  never dropped silently.
* Of an animated or multi-page image only the first frame is coded (with a warning).
* The stored pixel values are coded, in whatever colour space they are in, and
  an embedded ICC profile that describes it travels with them in the file
  (`colour_profile`; for a numpy array the caller passes it), as avifenc and
  cjxl keep it; decode writes it back into the output image. sRGB profiles are
  dropped (sRGB is what a profile-less image means, and the profile would cost
  a few kilobytes in every file); a profile that does not fit the coded image
  (an RGB one on a gray image), cannot be parsed or exceeds
  `container.MAX_PROFILE_BYTES` is dropped with a warning.
* The size is checked against the format's limits from the file's header,
  before its pixels are decoded.
* EXIF and XMP are not pixels: codec/metadata.py keeps them.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from codec import container
from codec.errors import AecWarning, MetadataError, UnsupportedImageError

ImageLike = Image.Image | np.ndarray
GRAY, RGB = "L", "RGB"


def open_image(source: str | Path | BinaryIO | bytes) -> Image.Image:
    """Open an image file (path, binary file or bytes), fully read."""
    if isinstance(source, bytes):
        source = BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_size is stricter
            image = Image.open(source)
        with image:
            check_size(image.width, image.height)  # before decoding: a small file can hold a huge image
            raw_modes = " ".join(str(tile.args) for tile in image.tile)
            frames = _animation_frames(image)
            image.load()
            if "transparency" in image.info and image.mode in ("1", "L", "RGB"):
                image.info["aecodec.colour_key"] = _colour_key_in_8_bits(image, raw_modes)
            if ";16" in raw_modes and image.mode in ("RGB", "RGBA", "LA", "CMYK"):  # PNG 'RGB;16B', TIFF 'RGB;16N'
                image.info["aecodec.16bit"] = True
            if ";32" in raw_modes and image.mode == "I":  # TIFF 'I;32S': no 8-bit scale implied
                raise UnsupportedImageError("32-bit integer images are not supported")
            if frames > 1:
                warnings.warn(f"only the first of this image's {frames} frames is coded", AecWarning, stacklevel=2)
            return image
    except UnidentifiedImageError:
        raise UnsupportedImageError("not an image format Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UnsupportedImageError(f"cannot read image: {error}") from None
    except Image.DecompressionBombError as error:
        raise UnsupportedImageError(str(error)) from None


def _animation_frames(image: Image.Image) -> int:
    """How many frames an animated or multi-page image has (1 for a still one). An MPO file, a
    camera JPEG with its preview images, counts as still."""
    if image.format == "MPO" or not getattr(image, "is_animated", False):
        return 1
    try:
        return int(image.n_frames)
    except (OSError, SyntaxError, ValueError, EOFError):  # a damaged later frame: the first still codes
        return 1


def _colour_key_in_8_bits(image: Image.Image, raw_modes: str) -> int | tuple[int, ...]:
    """A colour key (PNG tRNS) on the scale of the 8-bit pixels that `to_array` compares it with:
    Pillow reports it in the file's sample depth (1, 2, 4 or 16 bits)."""
    key = image.info["transparency"]
    if image.mode == "1":
        return 255 if key else 0
    for bits in (1, 2, 4):
        if f"L;{bits}" in raw_modes:
            return int(key) * 255 // (2**bits - 1)
    if ";16" in raw_modes:  # 16 → 8 bits keeps the high byte
        return tuple(v >> 8 for v in key) if isinstance(key, tuple) else int(key) >> 8
    return key


ORIENTATION_TAG = 0x0112
# How to turn pixels of each EXIF orientation upright (Exif 2.3, tag 0x0112; ImageOps.exif_transpose's table).
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation(image: ImageLike, warn: bool = False) -> int:
    """The orientation, 1..8, that the encoder turns `image` upright by: its EXIF orientation,
    else its XMP's, as Pillow reads them (`Image.getexif`); 1 for a numpy array, for none, for an
    invalid value, and for metadata Pillow cannot parse (with a warning if `warn`)."""
    if not isinstance(image, Image.Image):
        return 1
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception as error:  # noqa: BLE001 — Pillow parsing damaged EXIF/XMP: the pixels are still good
        if warn:
            message = f"the image's orientation cannot be read ({error}): its pixels are coded as stored"
            warnings.warn(message, AecWarning, stacklevel=3)
        return 1
    return next((turn for turn in TRANSPOSES if value == turn), 1)  # == also matches 6.0 or a rational 6/1


def check_size(width: int, height: int) -> None:
    """Refuse an image larger than the container can describe."""
    if width > container.MAX_DIMENSION or height > container.MAX_DIMENSION or width * height > container.MAX_PIXELS:
        raise UnsupportedImageError(
            f"image size {width}×{height} exceeds the format's limits "
            f"({container.MAX_DIMENSION} per side, {container.MAX_PIXELS} pixels)"
        )


def colour_profile(image: ImageLike, mode: str, icc_profile: bytes | None = None) -> bytes:
    """The ICC profile to store with `image` coded in `mode` ('L' or 'RGB'): `icc_profile` if
    given (it describes the pixels as coded; for a numpy array it is the only source), else a PIL
    image's embedded profile; b"" for none, an sRGB one, a CMYK one (`to_array` has converted the
    pixels to sRGB through it) or an embedded one that cannot be kept (with a warning). A given
    profile that cannot be kept is a MetadataError: it was asked for."""
    if icc_profile is not None:
        icc = icc_profile
    elif isinstance(image, Image.Image):
        icc = b"" if image.mode == "CMYK" else image.info.get("icc_profile")
    else:
        icc = b""
    if not icc:
        return b""
    if len(icc) > container.MAX_PROFILE_BYTES:
        why = f"it is larger than {container.MAX_PROFILE_BYTES} bytes"
    else:
        why = profile_problem(icc, mode)
    if why and icc_profile is not None:
        raise MetadataError("icc", f"ICC profile not kept ({why})")
    if why:
        return _dropped_profile(why, "the pixels are coded as stored and will display as sRGB")
    return b"" if is_srgb(icc) else bytes(icc)


def describe_profile(icc: bytes) -> tuple[str, str] | None:
    """(description, colour space, e.g. 'RGB' or 'GRAY') of an ICC profile, or None if littlecms
    cannot read it or Pillow has no littlecms."""
    from PIL import features

    if not features.check("littlecms2"):
        return None
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(BytesIO(icc))
        return ImageCms.getProfileDescription(profile).strip() or "unnamed", profile.profile.xcolor_space.strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def profile_problem(icc: bytes, mode: str) -> str | None:
    """Why the ICC profile `icc` cannot describe pixels of `mode` ('L', 'RGB' or 'CMYK'), or None if it can."""
    from PIL import features

    if not features.check("littlecms2"):
        return "Pillow was built without littlecms, which reads profiles"
    described = describe_profile(icc)
    if described is None:
        return "it cannot be read"
    description, space = described
    spaces = {GRAY: "GRAY", RGB: "RGB", "CMYK": "CMYK"}
    kinds = {"GRAY": "gray", "RGB": "RGB", "CMYK": "CMYK"}
    if space != spaces[mode]:
        return f"{description!r} is a profile for {kinds.get(space, space)} images, and these are {kinds[spaces[mode]]}"
    return None


def is_srgb(icc: bytes) -> bool:
    """Whether an RGB or gray profile maps colours as sRGB does: every test colour through it to
    littlecms's sRGB lands within one level of itself. Decided by what the profile does, not its
    name ("Linear sRGB" profiles are not sRGB)."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(BytesIO(icc))
    levels = np.linspace(0, 255, 6).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
    gray = profile.profile.xcolor_space.strip() == "GRAY"
    colours = Image.fromarray(grid[..., 0] if gray else grid)  # uint8: mode L or RGB
    srgb = ImageCms.createProfile("sRGB")
    try:
        mapped = ImageCms.profileToProfile(colours, profile, srgb, outputMode="RGB")
    except ImageCms.PyCMSError:
        return False
    expected = np.repeat(grid[..., :1], 3, axis=-1) if gray else grid
    return bool(np.abs(np.asarray(mapped, dtype=np.int16) - expected).max() <= 1)


def _dropped_profile(why: str, consequence: str) -> bytes:
    warnings.warn(f"ICC profile not kept ({why}): {consequence}", AecWarning, stacklevel=3)
    return b""


def to_array(image: ImageLike, turn: int | None = None) -> tuple[np.ndarray, str]:
    """An (H, W, 3) uint8 array and the colour mode ('L' or 'RGB') to decode to. A PIL image is
    turned upright by orientation `turn` (1..8; by default its own, `orientation`)."""
    if isinstance(image, np.ndarray):
        return _array_from_numpy(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a uint8 numpy array, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise UnsupportedImageError("image has no pixels")
    if image.info.get("aecodec.16bit"):
        warnings.warn("16-bit image reduced to 8 bits per sample", AecWarning, stacklevel=2)
    if turn is None:
        turn = orientation(image, warn=True)
    if turn in TRANSPOSES:
        image = image.transpose(TRANSPOSES[turn])
    mode = image.mode
    if mode in ("1", "L", "RGB", "I", "I;16") and "transparency" in image.info:  # a colour key (PNG tRNS)
        key = np.asarray(image.info.get("aecodec.colour_key", image.info["transparency"]))
        pixels = np.asarray(image.convert("L") if mode == "1" else image)
        if mode == "RGB" and key.shape == (3,):
            _refuse_transparency((pixels == key).all(axis=-1))
        elif key.ndim == 0:
            _refuse_transparency(pixels == key)
    if mode in ("1", "L"):
        return _gray(np.asarray(image.convert("L")))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _gray(_to_8bit(np.asarray(image)))
    if mode == "F":
        raise UnsupportedImageError("floating-point images are not supported")
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("LA" if mode in ("LA", "La") else "RGBA"))
        _refuse_transparency(rgba[..., -1] != 255)
        return _gray(rgba[..., 0]) if mode in ("LA", "La") else (np.ascontiguousarray(rgba[..., :3]), RGB)
    if mode == "CMYK":
        return _cmyk_to_srgb(image), RGB
    return np.asarray(image.convert("RGB")), RGB


def _cmyk_to_srgb(image: Image.Image) -> np.ndarray:
    """CMYK pixels as sRGB: through the image's CMYK profile by littlecms if it has a usable
    one, else by Pillow's naive conversion (with a warning if a profile was there but unusable).
    The profile is only used here, never stored, so `container.MAX_PROFILE_BYTES` does not apply."""
    icc = image.info.get("icc_profile")
    if not icc:
        return np.asarray(image.convert("RGB"))
    why = profile_problem(icc, "CMYK")
    if why is None:
        from PIL import ImageCms

        profile, srgb = ImageCms.ImageCmsProfile(BytesIO(icc)), ImageCms.createProfile("sRGB")
        intent, flags = ImageCms.Intent.RELATIVE_COLORIMETRIC, ImageCms.Flags.BLACKPOINTCOMPENSATION
        try:
            converted = ImageCms.profileToProfile(image, profile, srgb, intent, outputMode="RGB", flags=flags)
            return np.asarray(converted)
        except ImageCms.PyCMSError as error:
            why = f"littlecms cannot convert through it: {error}"
    _dropped_profile(why, "the CMYK pixels are converted to RGB without it")
    return np.asarray(image.convert("RGB"))


def _array_from_numpy(array: np.ndarray) -> tuple[np.ndarray, str]:
    if array.dtype == np.uint16:
        array = _to_8bit(array)
    if array.dtype != np.uint8:
        raise UnsupportedImageError(f"numpy images must be uint8, got {array.dtype}")
    if 0 in array.shape[:2]:
        raise UnsupportedImageError(f"image has no pixels (shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return _gray(array)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise UnsupportedImageError(f"numpy images must be H×W, H×W×3 or H×W×4, got shape {array.shape}")
    if array.shape[2] == 4:
        _refuse_transparency(array[..., 3] != 255)
    return np.ascontiguousarray(array[..., :3]), RGB


def _gray(array: np.ndarray) -> tuple[np.ndarray, str]:
    return np.repeat(array[..., None], 3, axis=2), GRAY


def _to_8bit(array: np.ndarray) -> np.ndarray:
    warnings.warn("16-bit image reduced to 8 bits per sample", AecWarning, stacklevel=3)
    return np.clip(np.round(array.astype(np.float64) / 257), 0, 255).astype(np.uint8)


def _refuse_transparency(transparent: np.ndarray) -> None:
    """Refuse an image any of whose pixels is (partly) transparent: coding would lose that."""
    if transparent.any():
        raise UnsupportedImageError("images with transparency are not supported (alpha would be lost)")


def pad(array: np.ndarray, multiple: int) -> np.ndarray:
    """The uint8 (H, W, 3) image edge-padded up to a multiple of `multiple` in both sides.

    Replicating the border (rather than zero padding) keeps the padded area smooth,
    so it costs few bits.
    """
    height, width = array.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return array


def to_image(array: np.ndarray, mode: str) -> Image.Image:
    """The decoded RGB array as a PIL image of the original colour mode."""
    image = Image.fromarray(array, "RGB")
    return image.convert("L") if mode == GRAY else image
