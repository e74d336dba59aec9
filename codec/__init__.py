"""aecodec: a learned image codec with real, self-describing bitstreams.

    import codec
    data = codec.encode(image, quality=75)   # PIL image or uint8 array → bytes
    image = codec.decode(data)                # bytes → PIL image

See codec.api for the data path and docs/FORMAT.md for the byte format.
"""

import warnings

with warnings.catch_warnings():  # compressai uses torch.jit.script, deprecated in torch ≥ 2.10
    warnings.simplefilter("ignore", FutureWarning)
    import compressai  # noqa: F401

from codec.api import DEFAULT_MODEL, DEFAULT_QUALITY, decode, encode, lambda_for_quality, read_header
from codec.container import Header
from codec.errors import AecError, AecWarning, FormatError, MetadataError, UnsupportedImageError, WeightsError

__version__ = "0.7.5"

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QUALITY",
    "AecError",
    "AecWarning",
    "FormatError",
    "Header",
    "MetadataError",
    "UnsupportedImageError",
    "WeightsError",
    "decode",
    "encode",
    "lambda_for_quality",
    "read_header",
]
