"""Image decoding: JPEG/PNG by magic bytes, pixel-count guard, EXIF orientation, RGB uint8."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from facesearch import errors

# The formats Rekognition accepts, recognised by their first bytes (never by a file name).
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pillow's decoders for them (its JPEG decoder also opens multi-picture camera files, as MPO).
PILLOW_FORMATS = ("JPEG", "PNG")
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise errors.InvalidImageFormatException(
            "Request has invalid image format: the bytes are neither JPEG nor PNG"
        )
    try:
        with warnings.catch_warnings():
            # Our own pixel guard below replaces Pillow's DecompressionBombWarning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as exc:
        raise errors.ImageTooLargeException(f"Image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise errors.InvalidImageFormatException(f"Request has invalid image format: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise errors.ImageTooLargeException(
            f"Image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} pixels"
        )
    if width == 0 or height == 0:
        raise errors.InvalidImageFormatException("Request has invalid image format: the image has no pixels")
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise errors.ImageTooLargeException(f"Image is too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow raises OSError("image file is truncated ...") for cut-off files.
        raise errors.InvalidImageFormatException(f"Request has invalid image format: {exc}") from exc
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        # 16-bit grey PNGs: keep the top 8 bits (Pillow's convert("L") would clip everything above 255).
        grey = (np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as a viewer shows them, instead of their hidden colour.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_pil(data: bytes, max_pixels: int) -> Image.Image:
    """Decode to an RGB Pillow image with EXIF orientation applied (see ``decode_image``)."""
    image = _open(data, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise errors.InvalidImageFormatException(
            f"Request has invalid image format: bad EXIF data: {exc}"
        ) from exc
    return _to_rgb(image)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG bytes into an HxWx3 uint8 RGB array, EXIF orientation applied.

    Raises InvalidImageFormatException for bytes that are not JPEG/PNG by magic number, truncated or
    unreadable, and ImageTooLargeException when the pixel count exceeds ``max_pixels`` (checked from the
    header, before any pixel is decoded, so decompression bombs cost nothing).
    """
    return np.asarray(decode_pil(data, max_pixels))
