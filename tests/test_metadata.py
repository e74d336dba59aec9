"""EXIF and XMP travel with the pixels, turned upright with them; what cannot be kept is dropped."""

import dataclasses
import io
import struct

import pytest
from PIL import Image

import codec
from codec import container, metadata
from codec.errors import AecWarning, MetadataError
from codec.image import open_image
from tests.conftest import XMP, camera_exif, parsed, synthetic_image


def camera_jpeg(height: int = 24, width: int = 40, **options) -> Image.Image:
    """A JPEG (stored sideways, orientation 6) with EXIF and XMP, as `open_image` reads it."""
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(height, width)).save(buffer, "JPEG", quality=95, **options)
    return open_image(buffer.getvalue())


@pytest.mark.parametrize("big_endian", [True, False], ids=["MM", "II"])
def test_upright_exif_changes_only_the_orientation_value(big_endian):
    original = camera_exif(6, big_endian)
    upright = metadata.upright_exif(original)
    changed = [i for i, (a, b) in enumerate(zip(original, upright)) if a != b]
    assert len(upright) == len(original) and len(changed) == 1  # 6 → 1 is one byte
    assert parsed(upright)[metadata.ORIENTATION_TAG] == 1
    assert {k: v for k, v in parsed(upright).items() if k != metadata.ORIENTATION_TAG} == {
        k: v for k, v in parsed(original).items() if k != metadata.ORIENTATION_TAG
    }
    no_orientation = Image.Exif()
    no_orientation[0x010F] = "Cam"
    data = no_orientation.tobytes().removeprefix(metadata.EXIF_PREFIX)
    assert metadata.upright_exif(data) == data


def test_exif_and_xmp_of_a_camera_jpeg_travel_with_the_file_upright_with_the_pixels(tiny_weights):
    image = camera_jpeg(exif=metadata.EXIF_PREFIX + camera_exif(6), xmp=XMP)
    data = codec.encode(image)
    header = codec.read_header(data)
    assert (header.width, header.height) == (24, 40)  # turned by orientation 6
    tags = parsed(header.exif)
    assert tags[metadata.ORIENTATION_TAG] == 1 and tags[0x010F] == "Cam" and tags[0x0110] == "Model X"
    assert tags.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05" and tags.get_ifd(0x8825)[1] == "N"
    assert header.xmp == XMP.replace(b'tiff:Orientation="6"', b'tiff:Orientation="1"')
    decoded = codec.decode(data)
    assert decoded.info["exif"] == metadata.EXIF_PREFIX + header.exif and decoded.info["xmp"] == header.xmp
    assert decoded.getexif()[0x010F] == "Cam"
    plain = codec.encode(camera_jpeg())
    assert len(data) == len(plain) + 4 + len(header.exif) + 4 + len(XMP)  # length fields and bytes: no more


def test_every_form_of_xmp_orientation_is_set_upright_when_the_pixels_were_turned(tiny_weights):
    forms = b"<tiff:Orientation>8</tiff:Orientation> tiff:Orientation = '3' <tiff:Orientation> 6</tiff:Orientation>"
    header = codec.read_header(codec.encode(camera_jpeg(exif=metadata.EXIF_PREFIX + camera_exif(6), xmp=forms)))
    assert (
        header.xmp
        == b"<tiff:Orientation>1</tiff:Orientation> tiff:Orientation = '1' <tiff:Orientation> 1</tiff:Orientation>"
    )


def test_an_orientation_the_encoder_did_not_turn_by_is_kept_as_it_is(tiny_weights):
    single_quoted = XMP.replace(b'tiff:Orientation="6"', b"tiff:Orientation='6'")  # Pillow reads double quotes only
    header = codec.read_header(codec.encode(camera_jpeg(xmp=single_quoted)))
    assert (header.width, header.height) == (40, 24) and header.xmp == single_quoted
    array = synthetic_image(16, 24)  # coded as given, so its metadata is kept as given
    header = codec.read_header(codec.encode(array, exif=metadata.EXIF_PREFIX + camera_exif(3), xmp=XMP))
    assert parsed(header.exif)[metadata.ORIENTATION_TAG] == 3 and header.xmp == XMP


def test_exif_whose_orientation_cannot_be_set_upright_in_place_is_dropped_with_a_warning(tiny_weights):
    rational = b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHII", metadata.ORIENTATION_TAG, 5, 1, 26) + bytes(4)
    rational += struct.pack("<II", 6, 1)  # the value 6/1, at offset 26
    assert parsed(rational)[metadata.ORIENTATION_TAG] == 6
    with pytest.warns(AecWarning, match="EXIF not kept .its orientation"):
        header = codec.read_header(codec.encode(camera_jpeg(exif=metadata.EXIF_PREFIX + rational)))
    assert header.exif == b"" and (header.width, header.height) == (24, 40)


def test_xmp_that_pillow_reads_as_text_or_numbers_is_kept_right_or_dropped():
    from PIL.PngImagePlugin import iTXt

    image = Image.new("RGB", (4, 4))
    packet = "<x>Jos\xe9</x>".encode()  # UTF-8, as XMP is
    image.info["XML:com.adobe.xmp"] = packet.decode("latin-1")  # a PNG tEXt chunk, as Pillow < 13 gives it
    assert metadata.collect(image, "RGB").xmp == packet
    image.info["XML:com.adobe.xmp"] = iTXt("<x>Jos\xe9</x>", "", "")  # an iTXt chunk: UTF-8
    assert metadata.collect(image, "RGB").xmp == packet
    tiff = Image.new("RGB", (4, 4))
    tiff.info["exif"] = metadata.EXIF_PREFIX + camera_exif(1)  # read first: Pillow looks at no XMP
    tiff.info["xmp"] = 5000  # a TIFF's tag 700 typed LONG
    image = tiff
    with pytest.warns(AecWarning, match="XMP not kept .it is of type int"):
        assert metadata.collect(image, "RGB").xmp == b""


def test_strip_drops_each_kind_it_names(tiny_weights):
    from tests.conftest import icc_profile

    image = camera_jpeg(exif=metadata.EXIF_PREFIX + camera_exif(), xmp=XMP, icc_profile=icc_profile())
    everything = codec.read_header(codec.encode(image))
    assert everything.icc_profile and everything.exif and everything.xmp
    for kind, field in (("icc", "icc_profile"), ("exif", "exif"), ("xmp", "xmp")):
        header = codec.read_header(codec.encode(image, strip=[kind]))
        assert getattr(header, field) == b""
        assert all(getattr(header, other) for other in ("icc_profile", "exif", "xmp") if other != field)
    nothing = codec.read_header(codec.encode(image, strip=list(metadata.FIELDS)))
    assert (nothing.icc_profile, nothing.exif, nothing.xmp) == (b"", b"", b"")
    assert (nothing.width, nothing.height) == (24, 40)  # stripping EXIF still turns the pixels upright
    with pytest.raises(ValueError, match="unknown metadata kinds"):
        codec.encode(image, strip=["gps"])


def test_a_numpy_array_s_exif_and_xmp_are_passed_in(tiny_weights):
    array = synthetic_image(16, 16)
    header = codec.read_header(codec.encode(array, exif=metadata.EXIF_PREFIX + camera_exif(), xmp=XMP))
    assert header.exif == camera_exif() and header.xmp == XMP


def test_exif_and_xmp_given_for_a_pil_image_replace_its_own_upright_with_the_pixels(tiny_weights):
    image = camera_jpeg(exif=metadata.EXIF_PREFIX + camera_exif(6), xmp=XMP)
    header = codec.read_header(codec.encode(image, exif=camera_exif(6), xmp="<x>T\u014dky\u014d</x>"))
    assert (header.width, header.height) == (24, 40)  # turned by the image's own orientation
    assert header.exif == metadata.upright_exif(camera_exif(6))  # the camera's EXIF, given as avifenc users do
    assert header.xmp == "<x>T\u014dky\u014d</x>".encode()  # a caller's str is UTF-8
    header = codec.read_header(codec.encode(image, xmp=b""))  # b"": none
    assert parsed(header.exif)[metadata.ORIENTATION_TAG] == 1 and header.xmp == b""
    with pytest.raises(ValueError, match="exif both given and stripped"):
        codec.encode(image, exif=camera_exif(), strip=["exif"])


def test_an_image_s_own_metadata_is_not_read_when_it_is_replaced_or_stripped(tiny_weights, recwarn):
    from PIL import PngImagePlugin

    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("Raw profile type exif", "\nexif\n 8\nnot hex")
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(24, 40)).save(buffer, "PNG", pnginfo=chunks)
    image = open_image(buffer.getvalue())
    codec.encode(image, exif=camera_exif(1))
    codec.encode(image, strip=["exif"])
    assert not [w for w in recwarn if "EXIF not kept" in str(w.message)]


@pytest.mark.filterwarnings("ignore:Truncated File Read")  # Pillow, on the FLOAT entry
def test_an_orientation_pillow_reads_turns_the_pixels_even_beside_tags_pillow_cannot_rewrite(tiny_weights):
    exif = Image.Exif()
    exif[metadata.ORIENTATION_TAG], exif[0x0131] = 6, "editor"
    data = bytearray(exif.tobytes().removeprefix(metadata.EXIF_PREFIX))
    software = data.index(struct.pack(">H", 0x0131), 8)
    struct.pack_into(">H", data, software + 2, 11)  # Software typed FLOAT: Pillow's writer fails on it
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(24, 40)).save(buffer, "PNG", exif=bytes(data))
    header = codec.read_header(codec.encode(open_image(buffer.getvalue())))
    assert (header.width, header.height) == (24, 40) and metadata._orientation(header.exif) == 1


@pytest.mark.parametrize(
    ("kind", "data", "why"),
    [
        ("exif", b"not EXIF at all", "not TIFF-structured"),
        ("exif", camera_exif()[:20], "first IFD does not fit"),  # its entries cut off
        ("exif", b"II*\x00\xff\xff\x00\x00", "first IFD does not fit"),  # its offset past the end
        ("exif", camera_exif() + bytes(container.MAX_METADATA_BYTES), "larger than"),
        ("xmp", b"<x>\xff\xfe</x>", "not UTF-8"),
        ("xmp", b" " * (container.MAX_METADATA_BYTES + 1), "larger than"),
    ],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data", "ignore:the image's orientation cannot be read")
def test_an_image_s_metadata_that_cannot_be_kept_is_dropped_with_a_warning_and_given_bytes_are_an_error(
    tiny_weights, kind, data, why
):
    image = Image.fromarray(synthetic_image(16, 16))
    image.info[kind] = data
    with pytest.warns(AecWarning, match=f"{kind.upper()} not kept \\(.*{why}"):
        header = codec.read_header(codec.encode(image))
    assert getattr(header, kind) == b""
    with pytest.raises(MetadataError, match=f"{kind.upper()} not kept \\(.*{why}") as refused:
        codec.encode(synthetic_image(16, 16), **{kind: data})
    assert refused.value.kind == kind and isinstance(refused.value, ValueError)


def test_stored_metadata_that_fails_the_checks_is_not_attached_on_decode(tiny_weights):
    header, streams = container.unpack(codec.encode(synthetic_image(16, 16)))
    for field, bad in (("exif", b"no TIFF header"), ("xmp", b"\xff\xfe")):
        crafted = container.pack(dataclasses.replace(header, **{field: bad}), streams)
        with pytest.warns(AecWarning, match=f"the file's {field.upper()} is not used"):
            assert field not in codec.decode(crafted).info


def test_exif_in_the_first_ifd_is_read_with_its_entry_bounds_checked():
    exif = camera_exif()
    order, offset, count = metadata._first_ifd(exif)
    assert order == ">" and offset == 8 and count == struct.unpack_from(">H", exif, 8)[0] == 5
    assert metadata._first_ifd(exif[: offset + 2 + 12 * count]) is not None
    assert metadata._first_ifd(exif[: offset + 2 + 12 * count - 1]) is None


def test_an_orientation_stored_as_a_long_is_set_upright_too():
    exif = b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHII", metadata.ORIENTATION_TAG, 4, 1, 6) + bytes(4)
    assert parsed(exif)[metadata.ORIENTATION_TAG] == 6
    assert parsed(metadata.upright_exif(exif))[metadata.ORIENTATION_TAG] == 1


def test_imagemagick_s_png_exif_text_is_kept_like_an_exif_chunk(tiny_weights):
    from PIL import PngImagePlugin

    exif = metadata.EXIF_PREFIX + camera_exif(6)
    digits = exif.hex()
    text = f"\nexif\n{len(exif):8d}\n" + "\n".join(digits[i : i + 72] for i in range(0, len(digits), 72)) + "\n"
    for raw, expected in ((text, camera_exif(6)), ("\nexif\n 8\nnot hex", None)):
        chunks = PngImagePlugin.PngInfo()
        chunks.add_text("Raw profile type exif", raw)
        buffer = io.BytesIO()
        Image.fromarray(synthetic_image(24, 40)).save(buffer, "PNG", pnginfo=chunks)
        if expected is None:
            with pytest.warns(AecWarning) as record:
                assert codec.read_header(codec.encode(open_image(buffer.getvalue()))).exif == b""
            messages = [str(w.message) for w in record]
            assert any(m.startswith("the image's orientation cannot be read") for m in messages)
            assert any(m.startswith("EXIF not kept (ImageMagick's hex text") for m in messages)
            continue
        header = codec.read_header(codec.encode(open_image(buffer.getvalue())))
        assert (header.width, header.height) == (24, 40) and header.exif == metadata.upright_exif(expected)
