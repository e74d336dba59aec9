"""encode/decode through the Python API: round trips, exactness, image modes."""

import dataclasses
import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import codec
from codec import api, container, weights
from codec.errors import AecWarning, MetadataError, UnsupportedImageError
from codec.image import open_image, pad, to_array
from codec.models import ARCHITECTURES, PAD_MULTIPLE
from codec.tiling import to_uint8
from tests.conftest import cmyk_icc_profile, icc_profile, natural_image, synthetic_image


@pytest.mark.parametrize("model", ["bmshj2018-factorized", "bmshj2018-hyperprior"])
@pytest.mark.parametrize("coder", ["range", "ans"])
def test_decoded_image_equals_the_models_own_quantized_reconstruction(tiny_weights, model, coder):
    array = natural_image(70, 100)
    data = codec.encode(array, quality=50, model=model, coder=coder)
    decoded = np.asarray(codec.decode(data))
    net = weights.load(api.select_rate_point(model, 50))
    with torch.no_grad():
        x = torch.from_numpy(pad(array, PAD_MULTIPLE)).permute(2, 0, 1).unsqueeze(0).float() / 255
        expected = to_uint8(net.eval()(x)["x_hat"][0])[:70, :100]
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 1000), (65, 129), (64, 64), (1000, 3)])
def test_odd_sizes_round_trip_to_the_same_size(tiny_weights, height, width):
    decoded = codec.decode(codec.encode(synthetic_image(height, width)))
    assert decoded.size == (width, height) and decoded.mode == "RGB"


def test_quality_selects_the_nearest_rate_point_on_a_log_scale(tiny_weights):
    low, high = (codec.read_header(codec.encode(synthetic_image(16, 16), quality=q)).rate for q in (1, 100))
    assert low == pytest.approx(0.004) and high == pytest.approx(0.03)
    assert codec.lambda_for_quality(1) == pytest.approx(0.0018)
    assert codec.lambda_for_quality(100) == pytest.approx(0.18)
    with pytest.raises(ValueError):
        codec.lambda_for_quality(0)


def test_grayscale_decodes_as_grayscale(tiny_weights):
    gray = Image.fromarray(synthetic_image(33, 47)[..., 0], "L")
    decoded = codec.decode(codec.encode(gray))
    assert decoded.mode == "L" and decoded.size == (47, 33)
    assert codec.read_header(codec.encode(np.asarray(gray))).mode == "L"


def test_palette_images_become_rgb(tiny_weights):
    palette = Image.fromarray(synthetic_image(20, 30)).convert("P")
    assert codec.decode(codec.encode(palette)).mode == "RGB"


def test_opaque_alpha_is_dropped_and_real_transparency_is_refused(tiny_weights):
    rgba = np.concatenate([synthetic_image(20, 30), np.full((20, 30, 1), 255, np.uint8)], axis=2)
    assert codec.decode(codec.encode(Image.fromarray(rgba, "RGBA"))).mode == "RGB"
    rgba[3, 4, 3] = 0
    with pytest.raises(UnsupportedImageError, match="transparency"):
        codec.encode(Image.fromarray(rgba, "RGBA"))
    with pytest.raises(UnsupportedImageError, match="transparency"):
        codec.encode(rgba)


def test_16_bit_input_becomes_8_bit_with_a_warning(tiny_weights):
    deep = (synthetic_image(24, 24)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, "PNG")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = codec.decode(codec.encode(Image.open(io.BytesIO(buffer.getvalue()))))
    assert any(issubclass(w.category, AecWarning) for w in caught)
    assert decoded.mode == "L"


def test_exif_orientation_is_applied(tiny_weights):
    image = Image.fromarray(synthetic_image(20, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    decoded = codec.decode(codec.encode(Image.open(io.BytesIO(buffer.getvalue()))))
    assert decoded.size == (20, 50)


def test_unsupported_arrays_are_refused_with_a_clear_error(tiny_weights):
    with pytest.raises(UnsupportedImageError, match="uint8"):
        codec.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UnsupportedImageError, match="shape"):
        codec.encode(np.zeros((4, 4, 2), np.uint8))


def test_bpp_comes_from_the_file_size(tiny_weights):
    data = codec.encode(natural_image(64, 96))
    header = codec.read_header(data)
    assert header.height * header.width == 64 * 96
    from codec.metrics import bits_per_pixel

    assert bits_per_pixel(len(data), 64, 96) == len(data) * 8 / (64 * 96)


def test_loading_weights_never_recomputes_cdf_tables(tiny_weights, monkeypatch):
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    def forbidden(*args, **kwargs):
        raise AssertionError("CDF tables recomputed at load time")

    monkeypatch.setattr(EntropyBottleneck, "update", forbidden)
    monkeypatch.setattr(GaussianConditional, "update", forbidden)
    weights._load_cached.cache_clear()
    codec.decode(codec.encode(synthetic_image(16, 16), model="bmshj2018-hyperprior"))
    codec.decode(codec.encode(synthetic_image(16, 16), model="bmshj2018-factorized"))


def test_weights_that_do_not_match_their_card_are_refused(tiny_weights_dir, tmp_path, monkeypatch):
    import shutil

    for f in tiny_weights_dir.iterdir():
        shutil.copy(f, tmp_path)
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path))
    target = next(tmp_path.glob("bmshj2018-hyperprior*.safetensors"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    weights._load_cached.cache_clear()
    with pytest.raises(codec.WeightsError, match="SHA-256"):
        for q in (1, 100):
            codec.encode(synthetic_image(8, 8), quality=q, model="bmshj2018-hyperprior")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "TIFF", "BMP", "PPM"])
def test_every_common_input_format_is_read(tiny_weights, image_format):
    from codec.image import open_image

    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(30, 41)).save(buffer, image_format)
    decoded = codec.decode(codec.encode(open_image(buffer.getvalue())))
    assert decoded.size == (41, 30)


def test_unreadable_bytes_are_an_unsupported_image(tiny_weights):
    from codec.image import open_image

    with pytest.raises(UnsupportedImageError):
        open_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(UnsupportedImageError):
        open_image(b"plain text")


def test_16_bit_rgb_png_warns_too(tiny_weights):
    import struct
    import zlib

    from codec.image import open_image

    height, width = 4, 5
    samples = np.random.default_rng(0).integers(0, 65535, (height, width * 3)).astype(">u2")
    raw = b"".join(b"\0" + row.tobytes() for row in samples)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, truecolour
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codec.encode(open_image(png))
    assert any("16-bit" in str(w.message) for w in caught)


def test_a_broken_model_card_is_named(tiny_weights_dir, tmp_path, monkeypatch):
    import shutil

    for f in tiny_weights_dir.iterdir():
        shutil.copy(f, tmp_path)
    (tmp_path / "zz-broken.json").write_text('{"model": "bmshj2018-hyperprior", "lambda": ')
    monkeypatch.setenv("AECODEC_WEIGHTS", str(tmp_path))
    with pytest.raises(codec.WeightsError, match="zz-broken.json: invalid model card"):
        codec.encode(synthetic_image(8, 8))


def test_empty_images_are_refused(tiny_weights):
    with pytest.raises(UnsupportedImageError, match="no pixels"):
        codec.encode(np.zeros((0, 5, 3), np.uint8))


def test_exported_weights_store_integer_networks_narrowly_and_code_as_before(tmp_path):
    torch.manual_seed(0)
    model = ARCHITECTURES["bmshj2018-hyperprior"](8, 12).eval()
    card = weights.export(model, 0.01, tmp_path, {"training": {}})
    with safe_open(str(card.with_suffix(".safetensors")), "pt") as stored:
        dtypes = {key: stored.get_tensor(key).dtype for key in stored.keys()}
    assert dtypes["h_s_integer.weight0"] in (torch.int8, torch.int16, torch.int32)
    assert not any(key.startswith("h_s.") for key in dtypes)  # derived from h_s_integer when loaded
    assert dtypes["g_s.0.weight"] == torch.float32  # coding reads g_s: kept exact

    point = next(p for p in weights.rate_points(directory=tmp_path))
    loaded = weights.load(point)
    assert loaded.h_s_integer.weight0.dtype == torch.int64
    x = torch.from_numpy(natural_image(64, 64)).permute(2, 0, 1)[None].float() / 255
    assert loaded.compress(x) == model.compress(x)


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "minnen2020-channelwise"])
def test_float_networks_derived_from_integer_copies_match_the_trained_ones(tmp_path, arch):
    torch.manual_seed(0)
    model = ARCHITECTURES[arch](8, 16).eval()
    weights.export(model, 0.01, tmp_path, {"training": {}})
    loaded = weights.load(next(p for p in weights.rate_points(directory=tmp_path)))
    trained, derived = model.state_dict(), loaded.state_dict()
    float_keys = [
        k for k in trained if k.startswith(("h_s.", "entropy_parameters.")) and trained[k].is_floating_point()
    ]
    assert float_keys and all(k in derived for k in float_keys)
    for key in float_keys:  # within half a quantization step of the layer's largest weight (13 bits)
        assert (derived[key] - trained[key]).abs().max() <= trained[key].abs().max() * 2.0**-12 + 1e-12, key
    x = torch.from_numpy(natural_image(64, 64)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():  # training and refinement read these floats: the rate they estimate is the same
        bits = [sum(-torch.log2(p).sum() for p in m(x)["likelihoods"].values()) for m in (model, loaded)]
    assert abs(bits[1] - bits[0]) <= 1e-3 * bits[0]


def _png(image: Image.Image, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return open_image(buffer.getvalue())


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_png_colour_key_that_a_pixel_matches_is_refused_and_one_that_none_matches_is_ignored(tiny_weights, mode):
    image = Image.fromarray(synthetic_image(20, 30)).convert(mode)
    matched = image.getpixel((3, 4))
    with pytest.raises(UnsupportedImageError, match="transparency"):
        codec.encode(_png(image, transparency=matched))
    unmatched = (1, 2, 3) if mode == "RGB" else 0
    image = image.point(lambda v: max(v, 10))  # no pixel below 10, so none matches the key
    assert codec.decode(codec.encode(_png(image, transparency=unmatched))).mode == mode


def test_32_bit_integer_images_are_refused_rather_than_misread_as_16_bit():
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(16, 16)[..., 0].astype(np.int32)).save(buffer, "TIFF")
    with pytest.raises(UnsupportedImageError, match="32-bit"):
        open_image(buffer.getvalue())


def test_an_animated_image_codes_its_first_frame_with_a_warning(tiny_weights):
    frames = [Image.fromarray(synthetic_image(20, 30, seed=i)).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    with pytest.warns(AecWarning, match="first of this image.s 3 frames"):
        image = open_image(buffer.getvalue())
    assert codec.decode(codec.encode(image)).size == (30, 20)


def test_the_size_limit_is_checked_from_the_header_before_the_pixels_are_decoded():
    buffer = io.BytesIO()
    Image.new("1", (9000, 8000)).save(buffer, "PNG")  # 72 million pixels in a few kilobytes
    truncated = buffer.getvalue()[:200]  # the pixels could not even be decoded
    with pytest.raises(UnsupportedImageError, match="exceeds the format's limits"):
        open_image(truncated)


def test_a_colour_profile_other_than_srgb_travels_with_the_file_and_back(tiny_weights):
    profile = icc_profile()
    image = _png(Image.fromarray(synthetic_image(16, 16)), icc_profile=profile)
    data = codec.encode(image)
    assert codec.read_header(data).icc_profile == profile
    assert codec.decode(data).info["icc_profile"] == profile
    without = codec.encode(Image.fromarray(synthetic_image(16, 16)))
    assert len(data) == len(without) + 4 + len(profile)  # the profile's length field and bytes: no more


def test_srgb_profiles_are_not_stored_and_profiles_that_do_not_fit_are_dropped_with_a_warning(tiny_weights):
    from PIL import ImageCms

    rgb = Image.fromarray(synthetic_image(16, 16))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    renamed = srgb.replace("sRGB built-in".encode("utf-16-be"), "Camera space!".encode("utf-16-be"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AecWarning)
        for profile in (srgb, renamed):  # sRGB by what it does, whatever its name
            assert codec.read_header(codec.encode(_png(rgb, icc_profile=profile))).icc_profile == b""
        linear = icc_profile("Linear sRGB", gamma=1.0)  # not sRGB, whatever its name
        assert codec.read_header(codec.encode(_png(rgb, icc_profile=linear))).icc_profile == linear
    xyz = ImageCms.ImageCmsProfile(ImageCms.createProfile("XYZ")).tobytes()
    oversized = rgb.copy()  # Pillow reads PNG profiles only up to 1 MB: set it directly
    oversized.info["icc_profile"] = icc_profile() + bytes(container.MAX_PROFILE_BYTES)
    dropped = [_png(rgb, icc_profile=xyz), _png(rgb.convert("L"), icc_profile=icc_profile())]
    for image in [*dropped, _png(rgb, icc_profile=b"not a profile"), oversized]:
        with pytest.warns(AecWarning, match="ICC profile not kept"):
            assert codec.read_header(codec.encode(image)).icc_profile == b""


def test_a_stored_profile_that_does_not_fit_the_pixels_is_not_attached_on_decode(tiny_weights):
    data = codec.encode(Image.fromarray(synthetic_image(16, 16)))
    header, streams = container.unpack(data)
    for wrong in (icc_profile(gray=True), b"not a profile"):
        crafted = container.pack(dataclasses.replace(header, icc_profile=wrong), streams)
        with pytest.warns(AecWarning, match="ICC profile is not used"):
            assert "icc_profile" not in codec.decode(crafted).info


def test_a_numpy_array_s_colour_profile_is_passed_in_and_travels_with_the_file(tiny_weights):
    array, profile = synthetic_image(16, 16), icc_profile()
    data = codec.encode(array, icc_profile=profile)
    assert codec.read_header(data).icc_profile == profile
    assert codec.decode(data).info["icc_profile"] == profile
    assert codec.read_header(codec.encode(array)).icc_profile == b""
    with pytest.raises(MetadataError, match="ICC profile not kept"):  # checked as an embedded one is: asked for
        codec.encode(array, icc_profile=icc_profile(gray=True))
    embedded = _png(Image.fromarray(array), icc_profile=icc_profile("Embedded", gamma=2.2))
    assert codec.read_header(codec.encode(embedded, icc_profile=profile)).icc_profile == profile  # replaced


def _cmyk_jpeg(**options) -> Image.Image:
    """Flat patches of paper, cyan, magenta, yellow, black and a mix, as a CMYK JPEG."""
    inks = [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (128, 64, 32, 16)]
    patches = np.repeat(np.repeat(np.array(inks, np.uint8)[None], 32, axis=0), 32, axis=1)  # 32×192
    buffer = io.BytesIO()
    Image.fromarray(patches, "CMYK").save(buffer, "JPEG", quality=100, **options)
    return open_image(buffer.getvalue())


def _patch_means(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB"), np.float64)[8:24]  # away from the patches' edges
    return np.stack([pixels[:, 32 * k + 8 : 32 * k + 24].mean(axis=(0, 1)) for k in range(6)])


def test_a_cmyk_image_is_converted_to_srgb_through_its_embedded_profile(tiny_weights):
    from PIL import ImageCms

    image = _cmyk_jpeg(icc_profile=cmyk_icc_profile())
    srgb = ImageCms.createProfile("sRGB")
    profile = ImageCms.ImageCmsProfile(io.BytesIO(cmyk_icc_profile()))
    intent, flags = ImageCms.Intent.RELATIVE_COLORIMETRIC, ImageCms.Flags.BLACKPOINTCOMPENSATION
    managed = ImageCms.profileToProfile(image, profile, srgb, intent, outputMode="RGB", flags=flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AecWarning)
        array, mode = to_array(image)
        data = codec.encode(image)
    assert mode == "RGB" and np.array_equal(array, np.asarray(managed))
    naive = _patch_means(image.convert("RGB"))  # e.g. cyan (0, 255, 255), where the profile gives (87, 224, 249)
    assert np.abs(_patch_means(Image.fromarray(array)) - naive).max() > 60
    assert codec.read_header(data).icc_profile == b""  # the pixels are sRGB now
    large = image.copy()  # a CMYK profile is only used, never stored: no size limit applies
    large.info["icc_profile"] = cmyk_icc_profile() + bytes(container.MAX_PROFILE_BYTES)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AecWarning)
        assert np.array_equal(to_array(large)[0], array)


def test_a_cmyk_image_without_a_usable_profile_is_converted_naively(tiny_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("error", AecWarning)
        plain = _cmyk_jpeg()
        assert np.array_equal(to_array(plain)[0], np.asarray(plain.convert("RGB")))
    for profile in (icc_profile(), b"not a profile"):
        image = _cmyk_jpeg(icc_profile=profile)
        with pytest.warns(AecWarning, match="converted to RGB without it"):
            assert np.array_equal(to_array(image)[0], np.asarray(image.convert("RGB")))


def _png_16_bit_rgb(pixels: np.ndarray, key: tuple[int, int, int]) -> bytes:
    """A 16-bit RGB PNG with a tRNS colour key, written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", struct.pack(">HHH", *key))
        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.mark.filterwarnings("ignore:16-bit image reduced")
def test_a_colour_key_is_compared_at_the_file_s_bit_depth():
    levels = Image.fromarray(np.array([[0, 85], [170, 255]], np.uint8))
    buffer = io.BytesIO()
    levels.save(buffer, "PNG", bits=2, transparency=3)  # 2-bit gray: key 3 is white
    with pytest.raises(UnsupportedImageError, match="transparency"):
        to_array(open_image(buffer.getvalue()))
    white = np.full((2, 2, 3), 65535)
    with pytest.raises(UnsupportedImageError, match="transparency"):
        to_array(open_image(_png_16_bit_rgb(white, (65535, 65535, 65535))))
    to_array(open_image(_png_16_bit_rgb(white, (65535, 0, 0))))  # a key no pixel matches


def test_a_camera_jpeg_with_preview_images_is_not_taken_for_an_animation():
    photo = Image.fromarray(synthetic_image(32, 32))
    buffer = io.BytesIO()
    photo.save(buffer, "MPO", save_all=True, append_images=[photo.resize((8, 8))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", AecWarning)
        assert open_image(buffer.getvalue()).size == (32, 32)
