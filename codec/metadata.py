"""What travels with the pixels: the ICC profile, EXIF and XMP, as avifenc and cjxl keep them.

A camera photo's EXIF (date, camera, exposure, GPS) and XMP (ratings, keywords,
rights) are kept by default, as avifenc and cjxl keep them, and `strip` drops
any of the three kinds (the CLI's --ignore-icc, --ignore-exif, --ignore-xmp,
avifenc's flags). What is kept:

* ICC profile: see `codec.image.colour_profile` (sRGB ones are not stored).
* EXIF: the TIFF-structured bytes (byte-order mark first, as in PNG's eXIf
  chunk; the "Exif\\0\\0" prefix of JPEG's APP1 segment is removed). The encoder
  has already turned the pixels upright (`ImageOps.exif_transpose`), so the
  Orientation tag of the first IFD is rewritten to 1 in place: the rest of the
  bytes, maker notes and thumbnail included, stay exactly as they were.
* XMP: the UTF-8 packet, with any ``tiff:Orientation`` rewritten to 1 for the
  same reason (Pillow turns an image by it when EXIF has no orientation).

Anything that cannot be kept (unparseable EXIF, XMP that is not UTF-8, more
than `container.MAX_METADATA_BYTES`) is dropped with a warning, never stored
half-right. The decoder checks the same way before attaching what a file
holds to the decoded image (`usable`).
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image

from codec import container
from codec.errors import AecWarning
from codec.image import ImageLike, colour_profile, profile_problem

KINDS = ("icc", "exif", "xmp")
EXIF_PREFIX = b"Exif\x00\x00"  # before the TIFF structure in JPEG's APP1 and in Pillow's info["exif"]
ORIENTATION_TAG = 0x0112
_INTEGER_TYPES = {3: "H", 4: "I"}  # TIFF field types SHORT and LONG, as struct formats
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:=[\"']|>)\s*)[0-9]")


@dataclass(frozen=True)
class Metadata:
    """The bytes an .aec file stores beside the streams (b"": none)."""

    icc_profile: bytes = b""
    exif: bytes = b""  # TIFF-structured, Orientation 1
    xmp: bytes = b""  # UTF-8 XMP packet


NONE = Metadata()


def collect(
    image: ImageLike,
    mode: str,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | None = None,
    strip: Collection[str] = (),
) -> Metadata:
    """The metadata to store with `image` coded in `mode`: a PIL image's own (its ICC profile,
    info["exif"], info["xmp"]), or the bytes given for a numpy array's pixels; `strip` names kinds
    not to keep ('icc', 'exif', 'xmp')."""
    unknown = set(strip) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown metadata kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    if isinstance(image, Image.Image):
        if exif is not None or xmp is not None:
            raise ValueError("a PIL image carries its own EXIF and XMP (in image.info)")
        exif, xmp = image.info.get("exif"), image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
        if isinstance(exif, Image.Exif):  # set by hand, as Pillow's save accepts it
            exif = exif.tobytes()
    profile = b"" if "icc" in strip else colour_profile(image, mode, icc_profile)
    return Metadata(
        icc_profile=profile,
        exif=b"" if "exif" in strip or not exif else _kept_exif(bytes(exif)),
        xmp=b"" if "xmp" in strip or not xmp else _kept_xmp(xmp.encode() if isinstance(xmp, str) else bytes(xmp)),
    )


def _kept_exif(exif: bytes) -> bytes:
    exif = exif.removeprefix(EXIF_PREFIX)
    why = problem("exif", exif)
    if why:
        return _dropped("EXIF", why)
    return upright_exif(exif)


def _kept_xmp(xmp: bytes) -> bytes:
    why = problem("xmp", xmp)
    if why:
        return _dropped("XMP", why)
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)


def _dropped(what: str, why: str) -> bytes:
    warnings.warn(f"{what} not kept ({why})", AecWarning, stacklevel=4)
    return b""


def problem(kind: str, data: bytes) -> str | None:
    """Why `data` cannot be stored (or, on decode, attached) as `kind` ('exif' or 'xmp'), or None."""
    if len(data) > container.MAX_METADATA_BYTES:
        return f"it is larger than {container.MAX_METADATA_BYTES} bytes"
    if kind == "xmp":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
        return None
    return None if _first_ifd(data) is not None else "it is not TIFF-structured EXIF data"


def _first_ifd(exif: bytes) -> tuple[str, int, int] | None:
    """(struct byte order, offset, entry count) of the first IFD of TIFF-structured EXIF, when its
    header and every entry of that IFD lie within the bytes; else None."""
    if exif[:4] == b"II*\x00":
        order = "<"
    elif exif[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    if len(exif) < 8:
        return None
    (offset,) = struct.unpack_from(order + "I", exif, 4)
    if not 8 <= offset <= len(exif) - 2:
        return None
    (count,) = struct.unpack_from(order + "H", exif, offset)
    if offset + 2 + 12 * count > len(exif):
        return None
    return order, offset, count


def upright_exif(exif: bytes) -> bytes:
    """TIFF-structured EXIF with the first IFD's Orientation set to 1 (top-left), in place; the
    bytes are otherwise unchanged. EXIF with no Orientation is returned as it is."""
    layout = _first_ifd(exif)
    if layout is None:
        raise ValueError("not TIFF-structured EXIF data")
    order, offset, count = layout
    patched = bytearray(exif)
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", exif, entry)
        if tag == ORIENTATION_TAG and kind in _INTEGER_TYPES and values == 1:  # held in the entry itself
            struct.pack_into(order + _INTEGER_TYPES[kind], patched, entry + 8, 1)
    return bytes(patched)


def usable(stored: Metadata, mode: str) -> Metadata:
    """What a file stores that can be attached to its decoded image of `mode`: each kind that fails
    the encoder's checks is left out, with a warning (only a crafted file has one)."""
    problems = {
        "ICC profile": profile_problem(stored.icc_profile, mode) if stored.icc_profile else None,
        "EXIF": problem("exif", stored.exif) if stored.exif else None,
        "XMP": problem("xmp", stored.xmp) if stored.xmp else None,
    }
    for what, why in problems.items():
        if why:
            warnings.warn(f"the file's {what} is not used ({why})", AecWarning, stacklevel=3)
    blocks = (stored.icc_profile, stored.exif, stored.xmp)
    return Metadata(*(b"" if why else block for why, block in zip(problems.values(), blocks)))


def image_info(metadata: Metadata) -> dict[str, bytes]:
    """What `codec.decode` puts in the decoded image's info, named as Pillow names what it reads
    from a JPEG: "icc_profile", "exif" with its "Exif\\0\\0" prefix, "xmp"."""
    info = {"icc_profile": metadata.icc_profile} if metadata.icc_profile else {}
    if metadata.exif:
        info["exif"] = EXIF_PREFIX + metadata.exif
    if metadata.xmp:
        info["xmp"] = metadata.xmp
    return info
