"""The classical codecs we compare against, all through Pillow, in the same run.

Each codec is a sweep of one setting; every point is measured like our own codec:
bpp from the encoded file's bytes, distortion on the decoded 8-bit RGB image.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, features

QUALITIES = tuple(range(5, 100, 5))


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    pillow_format: str
    settings: tuple
    options: Callable[[object], dict]
    description: str

    def encode(self, image: Image.Image, setting) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, self.pillow_format, **self.options(setting))
        return buffer.getvalue()

    @staticmethod
    def decode(data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")


def available() -> list[ClassicalCodec]:
    """Every classical codec this Pillow build can write."""
    codecs = [
        ClassicalCodec("JPEG 4:2:0", "JPEG", QUALITIES, lambda q: {"quality": q, "subsampling": "4:2:0"},
                       f"libjpeg-turbo {features.version('libjpeg_turbo')}, quality 5..95, 4:2:0 (Pillow's default)"),
        ClassicalCodec("JPEG 4:4:4", "JPEG", QUALITIES, lambda q: {"quality": q, "subsampling": "4:4:4"},
                       f"libjpeg-turbo {features.version('libjpeg_turbo')}, quality 5..95, 4:4:4"),
    ]  # fmt: skip
    if features.check("webp"):
        codecs.append(ClassicalCodec("WebP", "WEBP", QUALITIES, lambda q: {"quality": q, "method": 6},
                                     f"libwebp {features.version('webp')}, quality 5..95, method 6"))  # fmt: skip
    if features.check("avif"):
        for subsampling in ("4:2:0", "4:4:4"):
            codecs.append(ClassicalCodec(
                f"AVIF {subsampling}", "AVIF", QUALITIES,
                lambda q, s=subsampling: {"quality": q, "subsampling": s, "speed": 6},
                f"libavif {features.version('avif')}, quality 5..95, {subsampling}, speed 6",
            ))  # fmt: skip
    if features.check("jpg_2000"):
        ratios = (320, 240, 160, 120, 96, 80, 64, 48, 40, 32, 24, 16, 12, 8)  # compression ratio vs 24-bit RGB
        codecs.append(ClassicalCodec(
            "JPEG 2000", "JPEG2000", ratios,
            lambda r: {"quality_mode": "rates", "quality_layers": [r], "irreversible": True},
            f"OpenJPEG {features.version('jpg_2000')}, 9/7 wavelet, compression ratio 320..8",
        ))  # fmt: skip
    try:
        from importlib.metadata import version

        import pillow_jxl  # noqa: F401  (registers the JXL format)

        codecs.append(ClassicalCodec("JPEG XL", "JXL", QUALITIES, lambda q: {"quality": q},
                                     f"libjxl via pillow-jxl-plugin {version('pillow-jxl-plugin')}, quality 5..95"))  # fmt: skip
    except ImportError:
        pass
    return codecs
