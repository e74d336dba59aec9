"""The aecodec command through subprocess: exit codes, messages, files left behind."""

import dataclasses
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from tests.conftest import synthetic_image


def aecodec(*args: str, env_weights: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"AECODEC_WEIGHTS": str(env_weights)}
    return subprocess.run(
        [sys.executable, "-m", "codec.cli", *args], input=stdin, capture_output=True, env=env, timeout=120
    )


@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(synthetic_image(45, 70)).save(path)
    return path


def test_encode_info_decode_round_trip(tiny_weights_dir, png, tmp_path):
    aec, out = tmp_path / "x.aec", tmp_path / "out.png"
    result = aecodec("encode", str(png), str(aec), "-q", "90", env_weights=tiny_weights_dir)
    assert result.returncode == 0, result.stderr
    assert b"bpp" in result.stderr
    info = aecodec("info", str(aec), env_weights=tiny_weights_dir)
    assert info.returncode == 0 and b"size: 70\xc3\x9745" in info.stdout and b"installed" in info.stdout
    assert aecodec("decode", str(aec), str(out), env_weights=tiny_weights_dir).returncode == 0
    assert Image.open(out).size == (70, 45)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png", "x.aec"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_existing_output_is_kept_without_force(tiny_weights_dir, png, tmp_path):
    aec = tmp_path / "x.aec"
    aec.write_bytes(b"precious")
    result = aecodec("encode", str(png), str(aec), env_weights=tiny_weights_dir)
    assert result.returncode != 0 and b"already exists" in result.stderr
    assert aec.read_bytes() == b"precious"
    assert aecodec("encode", str(png), str(aec), "-f", env_weights=tiny_weights_dir).returncode == 0
    assert aec.read_bytes()[:4] == b"\x89AEC"


def test_corrupt_input_gives_one_line_error_and_no_output(tiny_weights_dir, png, tmp_path):
    aec, out = tmp_path / "x.aec", tmp_path / "out.png"
    assert aecodec("encode", str(png), str(aec), env_weights=tiny_weights_dir).returncode == 0
    data = bytearray(aec.read_bytes())
    data[-8] ^= 0xFF  # inside the last stream
    aec.write_bytes(bytes(data))
    result = aecodec("decode", str(aec), str(out), env_weights=tiny_weights_dir)
    assert result.returncode == 1
    assert result.stderr.decode().strip().count("\n") == 0 and "checksum" in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_non_image_input_is_a_clear_error(tiny_weights_dir, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("hello")
    result = aecodec("encode", str(bogus), str(tmp_path / "x.aec"), env_weights=tiny_weights_dir)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert not (tmp_path / "x.aec").exists()
    missing = aecodec("decode", str(tmp_path / "nope.aec"), str(tmp_path / "o.png"), env_weights=tiny_weights_dir)
    assert missing.returncode == 1 and b"No such file" in missing.stderr


def test_stdin_and_stdout(tiny_weights_dir, png):
    encoded = aecodec("encode", "-", "-", "--quiet", env_weights=tiny_weights_dir, stdin=png.read_bytes())
    assert encoded.returncode == 0 and encoded.stdout[:4] == b"\x89AEC" and encoded.stderr == b""
    decoded = aecodec("decode", "-", "-", "--quiet", env_weights=tiny_weights_dir, stdin=encoded.stdout)
    assert decoded.returncode == 0 and decoded.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_usage_errors_exit_2(tiny_weights_dir, png, tmp_path):
    assert aecodec("encode", str(png), str(tmp_path / "x.aec"), "-q", "0", env_weights=tiny_weights_dir).returncode == 2
    assert aecodec("decode", str(png), str(tmp_path / "x.unknown"), env_weights=tiny_weights_dir).returncode == 2
    assert aecodec("encode", str(png), str(png), "-f", env_weights=tiny_weights_dir).returncode == 2
    assert aecodec("frobnicate", env_weights=tiny_weights_dir).returncode == 2
    aec = tmp_path / "y.aec"
    assert aecodec("encode", str(png), str(aec), env_weights=tiny_weights_dir).returncode == 0
    read_only_format = aecodec("decode", str(aec), str(tmp_path / "out.psd"), env_weights=tiny_weights_dir)
    assert read_only_format.returncode == 2 and b"cannot write" in read_only_format.stderr


def test_debug_shows_the_traceback_from_either_position(tiny_weights_dir, tmp_path):
    for args in (
        ("--debug", "info", str(tmp_path / "missing.aec")),
        ("info", str(tmp_path / "missing.aec"), "--debug"),
    ):
        result = aecodec(*args, env_weights=tiny_weights_dir)
        assert result.returncode != 0 and b"Traceback" in result.stderr


def test_eval_prints_bpp_and_psnr(tiny_weights_dir, png):
    result = aecodec("eval", str(png), "--model", "bmshj2018-factorized", env_weights=tiny_weights_dir)
    assert result.returncode == 0, result.stderr
    row = result.stdout.decode().splitlines()[-1].split()
    assert row[0] == "in.png" and float(row[3]) > 0 and np.isfinite(float(row[4]))


def test_models_lists_the_shipped_rate_points_and_marks_the_default_model():
    from codec import api, weights

    result = aecodec("models", env_weights=weights.DEFAULT_WEIGHTS_DIR)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(weights.rate_points(directory=weights.DEFAULT_WEIGHTS_DIR))
    marked = [line for line in lines if line.endswith("(default)")]
    assert marked and all(line.startswith(api.DEFAULT_MODEL + " ") for line in marked)


def test_an_output_that_is_a_directory_or_ends_in_a_slash_is_refused_and_nothing_is_written(
    tiny_weights_dir, png, tmp_path
):
    for output in (str(tmp_path / "missing") + "/", str(tmp_path)):
        for force in ((), ("-f",)):
            result = aecodec("encode", str(png), output, *force, env_weights=tiny_weights_dir)
            assert result.returncode == 2 and b"is a directory" in result.stderr
    result = aecodec("decode", str(png), str(tmp_path / "missing") + "/", env_weights=tiny_weights_dir)
    assert result.returncode == 2 and b"is a directory" in result.stderr
    assert not (tmp_path / "missing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_decode_writes_only_formats_it_can_write_faithfully(tiny_weights_dir, png, tmp_path):
    aec = tmp_path / "x.aec"
    assert aecodec("encode", str(png), str(aec), env_weights=tiny_weights_dir).returncode == 0
    for extension in (".ico", ".xbm", ".pbm"):  # wrong size, wrong mode, 1 bit
        result = aecodec("decode", str(aec), str(tmp_path / f"out{extension}"), env_weights=tiny_weights_dir)
        assert result.returncode == 2 and b"cannot write" in result.stderr
    result = aecodec("decode", str(aec), str(tmp_path / "out.pgm"), env_weights=tiny_weights_dir)
    assert result.returncode == 2 and b"gray" in result.stderr
    for extension in (".png", ".webp", ".ppm"):
        assert (
            aecodec("decode", str(aec), str(tmp_path / f"out{extension}"), env_weights=tiny_weights_dir).returncode == 0
        )
    reference = np.asarray(Image.open(tmp_path / "out.png"))
    for extension in (".webp", ".ppm"):  # lossless
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"out{extension}")), reference)
    gray = tmp_path / "gray.png"
    Image.fromarray(synthetic_image(45, 70)).convert("L").save(gray)
    gray_aec = tmp_path / "gray.aec"
    assert aecodec("encode", str(gray), str(gray_aec), env_weights=tiny_weights_dir).returncode == 0
    for extension in (".pgm", ".qoi", ".tga", ".bmp", ".webp", ".jpg"):  # QOI holds no gray: written as RGB
        result = aecodec("decode", str(gray_aec), str(tmp_path / f"gray{extension}"), env_weights=tiny_weights_dir)
        assert result.returncode == 0, (extension, result.stderr)


def test_a_target_that_no_rate_reaches_is_written_at_the_nearest_end_with_a_warning(tiny_weights_dir, png, tmp_path):
    result = aecodec("encode", str(png), str(tmp_path / "x.aec"), "--target-psnr", "90", env_weights=tiny_weights_dir)
    assert result.returncode == 0 and b"--target-psnr 90 not reached" in result.stderr
    for bad in ("nan", "inf", "-1"):
        result = aecodec(
            "encode", str(png), str(tmp_path / "y.aec"), "--target-psnr", bad, env_weights=tiny_weights_dir
        )
        assert result.returncode == 2 and not (tmp_path / "y.aec").exists()


def test_decode_writes_the_stored_colour_profile_where_the_format_can_hold_one(
    tiny_weights_dir, tmp_path, monkeypatch, capsys
):
    from codec.cli import main
    from tests.conftest import icc_profile

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))  # in-process: 7 commands in a second
    source, aec = tmp_path / "p3.png", tmp_path / "p3.aec"
    profile = icc_profile()
    Image.fromarray(synthetic_image(45, 70)).save(source, icc_profile=profile)
    assert main(["encode", str(source), str(aec)]) == 0
    assert main(["info", str(aec)]) == 0
    assert f"ICC profile: Test P3 space, {len(profile)} bytes" in capsys.readouterr().out
    for name in ("out.png", "out.jpg", "out.webp", "out.tif"):
        assert main(["decode", str(aec), str(tmp_path / name)]) == 0
        assert Image.open(tmp_path / name).info.get("icc_profile") == profile, name
    assert main(["decode", str(aec), str(tmp_path / "out.ppm")]) == 0
    assert "ICC profile is not written: PPM cannot hold one" in capsys.readouterr().err
    assert main(["eval", str(source)]) == 0
    assert f"(bytes include {len(profile)} bytes of ICC profile)" in capsys.readouterr().out

    gray, gray_aec = tmp_path / "gray-in.png", tmp_path / "gray.aec"
    Image.fromarray(synthetic_image(45, 70)[..., 0]).save(gray, icc_profile=icc_profile("Gray 1.8", gray=True))
    assert main(["encode", str(gray), str(gray_aec)]) == 0
    assert main(["decode", str(gray_aec), str(tmp_path / "gray.webp")]) == 0  # WebP stores gray pixels as RGB
    assert "gray ICC profile is not written: WebP holds no gray images" in capsys.readouterr().err
    assert "icc_profile" not in Image.open(tmp_path / "gray.webp").info
    assert main(["decode", str(gray_aec), str(tmp_path / "gray.png")]) == 0
    assert Image.open(tmp_path / "gray.png").info["icc_profile"] == icc_profile("Gray 1.8", gray=True)


def test_exif_and_xmp_are_kept_and_written_where_the_format_can_hold_them(
    tiny_weights_dir, tmp_path, monkeypatch, capsys
):
    from codec.cli import main
    from tests.conftest import XMP, camera_exif

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))  # in-process
    source, aec = tmp_path / "camera.jpg", tmp_path / "camera.aec"
    Image.fromarray(synthetic_image(24, 40)).save(source, exif=b"Exif\0\0" + camera_exif(6), xmp=XMP)
    assert main(["encode", str(source), str(aec)]) == 0
    assert main(["info", str(aec)]) == 0
    out = capsys.readouterr().out
    exif_bytes = len(camera_exif())
    assert f"EXIF: {exif_bytes} bytes" in out and f"XMP: {len(XMP)} bytes" in out and "size: 24×40" in out
    for name in ("out.png", "out.jpg", "out.webp", "out.tif"):
        assert main(["decode", str(aec), str(tmp_path / name)]) == 0
        decoded = Image.open(tmp_path / name)
        tags = decoded.getexif()
        assert tags[0x0112] == 1 and tags[0x010F] == "Cam", name
        assert tags.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05", name
        assert decoded.info["xmp"] == XMP.replace(b'Orientation="6"', b'Orientation="1"'), name
        assert decoded.size == (24, 40)
    assert main(["decode", str(aec), str(tmp_path / "out.bmp")]) == 0
    assert "the file's EXIF and XMP are not written: BMP cannot hold them" in capsys.readouterr().err
    assert main(["eval", str(source)]) == 0
    assert f"(bytes include {exif_bytes} bytes of EXIF and {len(XMP)} bytes of XMP)" in capsys.readouterr().out

    stripped = tmp_path / "stripped.aec"
    assert main(["encode", str(source), str(stripped), "--ignore-exif", "--ignore-xmp"]) == 0
    assert main(["info", str(stripped)]) == 0
    out = capsys.readouterr().out
    assert "EXIF: none" in out and "XMP: none" in out and "size: 24×40" in out  # still turned upright


def test_encode_stores_the_icc_exif_and_xmp_files_it_is_given_instead_of_the_input_s(
    tiny_weights_dir, tmp_path, monkeypatch, capsys
):
    from codec.cli import main
    from tests.conftest import XMP, camera_exif, icc_profile

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))
    source = tmp_path / "camera.jpg"
    Image.fromarray(synthetic_image(24, 40)).save(source, exif=b"Exif\0\0" + camera_exif(6), xmp=XMP)
    files = {"icc": icc_profile(), "exif": camera_exif(1)[:-2] + b"AB", "xmp": b"<x:xmpmeta/>"}
    for option, payload in files.items():
        (tmp_path / option).write_bytes(payload)
    given = [arg for option in files for arg in (f"--{option}", str(tmp_path / option))]
    assert main(["encode", str(source), str(tmp_path / "given.aec"), *given]) == 0
    header = codec.read_header((tmp_path / "given.aec").read_bytes())
    assert (header.icc_profile, header.exif, header.xmp) == tuple(files.values())
    assert (header.width, header.height) == (24, 40)  # turned by the input's own orientation
    capsys.readouterr()

    (tmp_path / "junk").write_bytes(b"not a profile")
    assert main(["encode", str(source), str(tmp_path / "junk.aec"), "--icc", str(tmp_path / "junk")]) == 1
    assert f"{tmp_path / 'junk'}: ICC profile not kept (it cannot be read)\n" in capsys.readouterr().err
    assert main(["encode", str(source), str(tmp_path / "junk.aec"), "--exif", str(tmp_path / "junk")]) == 1
    assert "EXIF not kept (it is not TIFF-structured EXIF data)" in capsys.readouterr().err
    assert not (tmp_path / "junk.aec").exists()
    assert main(["encode", str(source), str(tmp_path / "x.aec"), "--xmp", str(tmp_path / "xmp"), "--ignore-xmp"]) == 2
    assert main(["encode", str(source), str(tmp_path / "x.aec"), "--xmp", str(tmp_path / "missing")]) == 1
    (tmp_path / "empty").write_bytes(b"")
    assert main(["encode", str(source), str(tmp_path / "x.aec"), "--exif", str(tmp_path / "empty")]) == 1
    assert "empty (--ignore-exif leaves the input's EXIF out)" in capsys.readouterr().err
    assert not (tmp_path / "x.aec").exists()


def test_decode_writes_the_image_without_metadata_pillow_cannot_write(tiny_weights_dir, tmp_path, monkeypatch, capsys):

    from codec import container
    from codec.cli import main
    from tests.conftest import icc_profile

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))
    header, streams = container.unpack(codec.encode(synthetic_image(16, 16)))
    big = b"II*\x00\x08\x00\x00\x00\x00\x00" + bytes(70_000)  # valid, but over a JPEG segment
    path = tmp_path / "big.aec"
    path.write_bytes(container.pack(dataclasses.replace(header, exif=big), streams))
    assert main(["decode", str(path), str(tmp_path / "big.jpg")]) == 0
    assert "EXIF is not written: it is larger than one JPEG marker segment holds" in capsys.readouterr().err
    assert "exif" not in Image.open(tmp_path / "big.jpg").info
    # An orientation given as text, which TIFF's writer cannot re-encode: written without it, but
    # with the profile.
    bad = b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHI4s", 0x0112, 2, 4, b"AAA\x00") + bytes(4)
    path = tmp_path / "bad.aec"
    path.write_bytes(container.pack(dataclasses.replace(header, exif=bad, icc_profile=icc_profile()), streams))
    assert main(["decode", str(path), str(tmp_path / "bad.tif")]) == 0
    assert "the file's EXIF is not written: Pillow failed on it" in capsys.readouterr().err
    written = Image.open(tmp_path / "bad.tif")
    assert written.size == (16, 16) and written.info["icc_profile"] == icc_profile()


def test_a_camera_s_exif_layout_tags_do_not_change_the_tiff_that_decode_writes(tiny_weights_dir, tmp_path, monkeypatch):
    from codec.cli import main

    monkeypatch.setenv("AECODEC_WEIGHTS", str(tiny_weights_dir))
    exif = Image.Exif()
    exif[0x0100], exif[0x0101], exif[0x0106], exif[0x010A], exif[0x010F] = 4000, 3000, 2, 2, "Cam"
    source = tmp_path / "phone.jpg"
    Image.fromarray(synthetic_image(24, 16)[..., 0]).save(source, exif=exif)  # gray: photometric 2 would lie
    assert main(["encode", str(source), str(tmp_path / "phone.aec")]) == 0
    assert main(["decode", str(tmp_path / "phone.aec"), str(tmp_path / "phone.tif")]) == 0
    written = Image.open(tmp_path / "phone.tif")
    assert written.size == (16, 24) and written.mode == "L" and written.getexif()[0x010F] == "Cam"
    expected = np.asarray(codec.decode((tmp_path / "phone.aec").read_bytes()))
    assert np.array_equal(np.asarray(written), expected)


def test_a_weights_file_that_does_not_fit_its_model_is_a_one_line_error(tiny_weights_dir, png, tmp_path):
    from safetensors.torch import load_file, save_file

    from codec import weights

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    point = weights.rate_points("bmshj2018-hyperprior", tiny_weights_dir)[0]
    save_file({**load_file(point.weights_path), "bogus.weight": torch.zeros(1)}, weights_dir / point.weights_path.name)
    card = {**point.card, "sha256": weights.sha256_of(weights_dir / point.weights_path.name)}
    (weights_dir / point.card_path.name).write_text(json.dumps(card))
    result = aecodec(
        "encode", str(png), str(tmp_path / "x.aec"), "--model", "bmshj2018-hyperprior", env_weights=weights_dir
    )
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and "does not fit" in result.stderr.decode()
    assert "1 unexpected (bogus.weight)" in result.stderr.decode()
