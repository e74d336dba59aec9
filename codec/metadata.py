"""What travels with the pixels: the ICC profile, EXIF and XMP, as avifenc and cjxl keep them.

A camera photo's EXIF (date, camera, exposure, GPS) and XMP (ratings, keywords,
rights) are kept by default, as avifenc and cjxl keep them, and `strip` drops
any of the three kinds (the CLI's --ignore-icc, --ignore-exif, --ignore-xmp,
avifenc's flags). What is kept:

* ICC profile: see `codec.image.colour_profile` (sRGB ones are not stored).
* EXIF: the TIFF-structured bytes of a PIL image's info["exif"] (byte-order
  mark first, as in PNG's eXIf chunk; the "Exif\\0\\0" prefix of JPEG's APP1
  segment is removed), or of ImageMagick's PNG text "Raw profile type exif".
  A TIFF input's own tags are not EXIF in this sense and are not kept.
* XMP: the packet, as UTF-8 bytes.

Orientation. The encoder turns a PIL image's pixels upright by the orientation
Pillow reads (`ImageOps.exif_transpose`: EXIF's, else XMP's), as any viewer
would show them. When it did turn them, every orientation the stored EXIF and
XMP state is rewritten to 1, in place and nothing else: maker notes and
thumbnail stay byte for byte (the thumbnail, and EXIF's pixel dimensions, keep
the original orientation). EXIF whose orientation cannot be rewritten in place
(an odd field type) is dropped with a warning rather than stored to turn the
image twice. Bytes given to `collect` (a numpy array's metadata, or a
replacement for a PIL image's own, as avifenc's --icc/--exif/--xmp) describe
the pixels as coded, so they are kept as given, orientation included.

Anything that cannot be kept (EXIF whose first IFD does not fit its bytes, XMP
that is not UTF-8, more than `container.MAX_METADATA_BYTES`) is dropped with a
warning, never stored half-right. The decoder checks the same way before
attaching what a file holds to the decoded image (`usable`).
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from PIL import Image

from codec import container
from codec.errors import AecWarning
from codec.image import ImageLike, colour_profile, profile_problem

NAMES = {"icc_profile": "ICC profile", "exif": "EXIF", "xmp": "XMP"}  # Metadata's fields, as users read them
KINDS = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp"}  # what `strip` and the CLI's --ignore-* name
EXIF_PREFIX = b"Exif\x00\x00"  # before the TIFF structure in JPEG's APP1 and in Pillow's info["exif"]
ORIENTATION_TAG = 0x0112
TURNING_ORIENTATIONS = (2, 3, 4, 5, 6, 7, 8)  # those exif_transpose turns the pixels by
_INTEGER_TYPES = {3: "H", 4: "I", 8: "h", 9: "i"}  # TIFF SHORT, LONG, SSHORT, SLONG, as struct formats
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*(?:=\s*[\"']|>)\s*)[0-9]+")


@dataclass(frozen=True)
class Metadata:
    """The bytes an .aec file stores beside the streams (b"": none)."""

    icc_profile: bytes = b""
    exif: bytes = b""  # TIFF-structured
    xmp: bytes = b""  # UTF-8 XMP packet


NONE = Metadata()


def listed(names: Iterable[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def collect(
    image: ImageLike,
    mode: str,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    xmp: bytes | str | None = None,
    strip: Collection[str] = (),
) -> Metadata:
    """The metadata to store with `image` coded in `mode`. Each of `icc_profile`, `exif` and `xmp`
    that is given is kept as given (a numpy array has no other source; for a PIL image it
    replaces the image's own, as avifenc's --icc/--exif/--xmp do). Otherwise a PIL image's own
    (its ICC profile, info["exif"], info["xmp"]) are kept, with orientation 1 if the encoder
    turned its pixels upright. `strip` names kinds not to keep ('icc', 'exif', 'xmp')."""
    unknown = set(strip) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown metadata kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    given = {"exif": exif, "xmp": xmp}
    own: dict[str, object] = {}
    turned = False
    if isinstance(image, Image.Image):
        own = {"exif": _own_exif(image.info), "xmp": image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")}
        turned = _turned(image)
    kept = {}
    for kind, keep in (("exif", _kept_exif), ("xmp", _kept_xmp)):
        data = given[kind] if given[kind] is not None else own.get(kind)
        kept[kind] = keep(data, turned and given[kind] is None) if data and kind not in strip else b""
    icc = b"" if "icc" in strip else colour_profile(image, mode, icc_profile)
    return Metadata(icc_profile=icc, **kept)


def _turned(image: Image.Image) -> bool:
    """Whether `to_array` turned the pixels: by the orientation exif_transpose reads."""
    try:
        return image.getexif().get(ORIENTATION_TAG, 1) in TURNING_ORIENTATIONS
    except Exception:  # noqa: BLE001 — damaged EXIF/XMP, which to_array could not turn by either
        return False


def _own_exif(info: dict) -> object:
    """A PIL image's EXIF: info["exif"], else ImageMagick's PNG text "Raw profile type exif" (a
    header line, a length line, then hex digits), which Pillow reads the orientation from too."""
    if "exif" in info or "Raw profile type exif" not in info:
        return info.get("exif")
    try:
        return bytes.fromhex("".join(str(info["Raw profile type exif"]).split("\n")[3:]))
    except ValueError:
        return _dropped("EXIF", "ImageMagick's hex text of it cannot be read")


def _kept_exif(exif: object, turned: bool) -> bytes:
    if not isinstance(exif, bytes | bytearray):
        return _dropped("EXIF", f"it is a {type(exif).__name__}, not bytes")
    exif = bytes(exif).removeprefix(EXIF_PREFIX).removeprefix(EXIF_PREFIX)  # Pillow too accepts a doubled one
    why = problem("exif", exif)
    if why:
        return _dropped("EXIF", why)
    if not turned:
        return exif
    upright = upright_exif(exif)
    if _orientation(upright) not in (None, 1):
        return _dropped("EXIF", "its orientation is stored in a way that cannot be set to 1 in place")
    return upright


def _kept_xmp(xmp: object, turned: bool) -> bytes:
    if isinstance(xmp, str):  # Pillow < 13 gives PNG text: iTXt chunks are UTF-8, tEXt and zTXt Latin-1
        from PIL.PngImagePlugin import iTXt

        xmp = xmp.encode("utf-8" if isinstance(xmp, iTXt) else "latin-1", "replace")
    if not isinstance(xmp, bytes | bytearray):
        return _dropped("XMP", f"it is a {type(xmp).__name__}, not text")
    why = problem("xmp", bytes(xmp))
    if why:
        return _dropped("XMP", why)
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if turned else bytes(xmp)


def _dropped(what: str, why: str) -> bytes:
    warnings.warn(f"{what} not kept ({why})", AecWarning, stacklevel=4)
    return b""


def _orientation(exif: bytes) -> object:
    """The orientation Pillow reads from TIFF-structured EXIF (None if there is none)."""
    tags = Image.Exif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own complaints about damaged entries
        tags.load(EXIF_PREFIX + exif)
    return tags.get(ORIENTATION_TAG)


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
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return "it is not TIFF-structured EXIF data"
    return None if _first_ifd(data) is not None else "its first IFD does not fit its bytes"


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
    """TIFF-structured EXIF with the first IFD's Orientation set to 1 (top-left), in place, where it
    is one integer held in its entry; the bytes are otherwise unchanged."""
    layout = _first_ifd(exif)
    if layout is None:
        raise ValueError("not TIFF-structured EXIF data")
    order, offset, count = layout
    patched = bytearray(exif)
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, field_type, values = struct.unpack_from(order + "HHI", exif, entry)
        if tag == ORIENTATION_TAG and field_type in _INTEGER_TYPES and values == 1:
            struct.pack_into(order + _INTEGER_TYPES[field_type], patched, entry + 8, 1)
    return bytes(patched)


def usable(stored: Metadata, mode: str) -> Metadata:
    """What a file stores that can be attached to its decoded image of `mode`: each kind that fails
    the encoder's checks is left out, with a warning (only a crafted file has one)."""
    problems = {
        "icc_profile": profile_problem(stored.icc_profile, mode) if stored.icc_profile else None,
        "exif": problem("exif", stored.exif) if stored.exif else None,
        "xmp": problem("xmp", stored.xmp) if stored.xmp else None,
    }
    for field, why in problems.items():
        if why:
            warnings.warn(f"the file's {NAMES[field]} is not used ({why})", AecWarning, stacklevel=3)
    return Metadata(**{field: b"" if why else getattr(stored, field) for field, why in problems.items()})


def image_info(metadata: Metadata) -> dict[str, bytes]:
    """What `codec.decode` puts in the decoded image's info, named as Pillow names what it reads
    from a JPEG: "icc_profile", "exif" with its "Exif\\0\\0" prefix, "xmp"."""
    info = {"icc_profile": metadata.icc_profile} if metadata.icc_profile else {}
    if metadata.exif:
        info["exif"] = EXIF_PREFIX + metadata.exif
    if metadata.xmp:
        info["xmp"] = metadata.xmp
    return info
