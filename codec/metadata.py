"""What travels with the pixels: the ICC profile, EXIF and XMP, as avifenc and cjxl keep them.

A camera photo's EXIF (date, camera, exposure, GPS) and XMP (ratings, keywords,
rights) are kept by default, as avifenc and cjxl keep them; `strip` leaves any
of the three kinds out (the CLI's --ignore-icc, --ignore-exif, --ignore-xmp,
avifenc's flags), and bytes given to `collect` replace a PIL image's own (the
CLI's --icc, --exif, --xmp FILE, avifenc's too; a numpy array has no others).
What is kept:

* ICC profile: see `codec.image.colour_profile` (sRGB ones are not stored).
* EXIF: TIFF-structured bytes (byte-order mark first, as in PNG's eXIf chunk;
  the "Exif\\0\\0" prefix of JPEG's APP1 segment is removed): a PIL image's
  info["exif"], or ImageMagick's PNG text "Raw profile type exif". A TIFF
  input's own tags are not EXIF in this sense and are not kept.
* XMP: the packet, as UTF-8 bytes.

Orientation. The encoder turns a PIL image's pixels upright by its orientation
(`codec.image.orientation`: EXIF's, else XMP's, as Pillow reads them), as any
viewer would show them. When it turned them, every orientation the stored EXIF
and XMP state, given or the image's own, is rewritten to 1, in place and
nothing else: maker notes and thumbnail stay byte for byte (the thumbnail, and
EXIF's pixel dimensions, keep the original orientation). EXIF whose orientation
cannot be rewritten in place (an odd field type) is not stored, rather than
stored to turn the image twice. A numpy array is coded as given, so its EXIF
and XMP are kept as given, orientation included.

What cannot be kept (EXIF whose first IFD does not fit its bytes, XMP that is
not UTF-8, more than `container.MAX_METADATA_BYTES`) is never stored half-right:
an image's own is dropped with a warning, and bytes given for it are a
`MetadataError`, since they were asked for. The decoder checks the same way
before attaching what a file holds to the decoded image (`usable`).
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from PIL import Image

from codec import container
from codec.errors import AecWarning, MetadataError
from codec.image import ORIENTATION_TAG, ImageLike, colour_profile, profile_problem

FIELDS = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp"}  # kinds (`strip`, the CLI's options) → Metadata fields
NAMES = {"icc_profile": "ICC profile", "exif": "EXIF", "xmp": "XMP"}  # Metadata's fields, as users read them
LIMITS = {
    "icc_profile": container.MAX_PROFILE_BYTES,
    "exif": container.MAX_METADATA_BYTES,
    "xmp": container.MAX_METADATA_BYTES,
}
EXIF_PREFIX = b"Exif\x00\x00"  # before the TIFF structure in JPEG's APP1 and in Pillow's info["exif"]
_INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}  # TIFF (S)BYTE, SHORT, LONG, SSHORT, SLONG
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
    turned: bool = False,
    icc_profile: bytes | None = None,
    exif: bytes | Image.Exif | None = None,
    xmp: bytes | str | None = None,
    strip: Collection[str] = (),
) -> Metadata:
    """The metadata to store with `image`, coded in `mode` after being `turned` upright (by
    `codec.image.orientation`). `icc_profile`, `exif`, `xmp`: bytes to store instead of a PIL
    image's own (b"": none); for a numpy array, the only source. `strip`: kinds to leave out
    ('icc', 'exif', 'xmp'). Raises MetadataError for given bytes that cannot be stored."""
    given = {"icc": icc_profile, "exif": exif, "xmp": xmp}
    unknown = set(strip) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown metadata kinds {sorted(unknown)}; choose from {', '.join(FIELDS)}")
    both = [kind for kind in strip if given[kind] is not None]
    if both:
        raise ValueError(f"{listed(both)} both given and stripped")
    info = image.info if isinstance(image, Image.Image) else {}
    if exif is None and "exif" not in strip:
        exif = _own_exif(info)
    elif exif is not None:
        exif = _given_bytes("exif", exif)
    if xmp is None and "xmp" not in strip:
        xmp = _own_xmp(info)
    elif xmp is not None:
        xmp = _given_bytes("xmp", xmp)
    return Metadata(
        icc_profile=b"" if "icc" in strip else colour_profile(image, mode, icc_profile),
        exif=_kept("exif", exif, turned, given=given["exif"] is not None) if exif and "exif" not in strip else b"",
        xmp=_kept("xmp", xmp, turned, given=given["xmp"] is not None) if xmp and "xmp" not in strip else b"",
    )


def _given_bytes(kind: str, data: object) -> bytes:
    if isinstance(data, Image.Exif):
        return data.tobytes()
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{kind} must be bytes, got {type(data).__name__}")


def _own_exif(info: dict) -> bytes | None:
    """A PIL image's EXIF: info["exif"], else ImageMagick's PNG text "Raw profile type exif" (a
    header line, a length line, then hex digits), which Pillow reads the orientation from too."""
    exif = info.get("exif")
    if isinstance(exif, Image.Exif):  # set by hand, as Pillow's save accepts it
        return exif.tobytes()
    if exif is not None or "Raw profile type exif" not in info:
        return exif if isinstance(exif, bytes | None) else _dropped("EXIF", f"it is of type {type(exif).__name__}")
    try:
        return bytes.fromhex("".join(str(info["Raw profile type exif"]).split("\n")[3:]))
    except ValueError:
        return _dropped("EXIF", "ImageMagick's hex text of it cannot be read")


def _own_xmp(info: dict) -> bytes | None:
    """A PIL image's XMP: info["xmp"], or Pillow < 13's PNG text "XML:com.adobe.xmp" (iTXt chunks
    are UTF-8; tEXt and zTXt ones are read as Latin-1, so encoding them back gives their bytes)."""
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        from PIL.PngImagePlugin import iTXt

        return xmp.encode("utf-8" if isinstance(xmp, iTXt) else "latin-1", "replace")
    return xmp if isinstance(xmp, bytes | None) else _dropped("XMP", f"it is of type {type(xmp).__name__}")


def _kept(kind: str, data: bytes, turned: bool, given: bool) -> bytes:
    """EXIF or XMP as stored, orientation 1 if `turned`; b"" (with a warning) or a MetadataError
    (for `given` bytes) if it cannot be stored."""
    if kind == "exif":
        data = data.removeprefix(EXIF_PREFIX).removeprefix(EXIF_PREFIX)  # Pillow too accepts a doubled one
    why = problem(kind, data)
    if not why and turned:
        data = upright_exif(data) if kind == "exif" else _XMP_ORIENTATION.sub(rb"\g<1>1", data)
        if kind == "exif" and _orientation(data) not in (None, 1):
            why = "its orientation is stored in a way that cannot be set to 1 in place"
    if why and given:
        raise MetadataError(kind, f"{NAMES[kind]} not kept ({why})")
    return _dropped(NAMES[kind], why) if why else data


def _dropped(what: str, why: str) -> bytes:
    warnings.warn(f"{what} not kept ({why})", AecWarning, stacklevel=4)
    return b""


def _orientation(exif: bytes) -> object:
    """The orientation Pillow reads from TIFF-structured EXIF (None if there is none; the string
    'unreadable' if Pillow cannot parse it)."""
    tags = Image.Exif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own complaints about damaged entries
        try:
            tags.load(EXIF_PREFIX + exif)
        except Exception:  # noqa: BLE001 — whatever Pillow's parser trips on
            return "unreadable"
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
        tag, field_type, count = struct.unpack_from(order + "HHI", exif, entry)
        if tag == ORIENTATION_TAG and field_type in _INTEGER_TYPES and count == 1:
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
