"""Image decoding: JPEG/PNG by magic bytes, pixel-count guard, EXIF orientation, RGB uint8, reduced levels."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
from PIL import Image

from facesearch import errors

# The formats Rekognition accepts, recognised by their first bytes (never by a file name).
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pillow's decoders for them (its JPEG decoder also opens multi-picture camera files, as MPO).
PILLOW_FORMATS = ("JPEG", "PNG")
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
# The coarser levels a Picture offers: box means of r x r full-size pixels (Pillow's Image.reduce), about
# 10x cheaper than Pillow's antialiased resize of the full image. Not libjpeg's DCT-scaled decoding: every
# face's landmarks and aligned crop must come from the full-size pixels to keep the embeddings (crops from
# DCT-scaled levels moved 65 of the 194 dev embeddings under cosine 0.995 and cost 0.17 pt of accuracy), so
# the full decode is always made, and a second, scaled decode would only add to it.
REDUCTIONS = (8, 4, 2, 1)
# EXIF Orientation tag and the transpose that displays the stored pixels upright (ImageOps.exif_transpose's).
ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    """The checks of ``_open`` that need only the header (format, size), without decoding pixels."""
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
    return image


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open, check and decode the bytes."""
    image = _open_header(data, max_pixels)
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
    """Decode to a full-size RGB Pillow image with EXIF orientation applied (see ``decode_image``)."""
    image, _ = Picture(data, max_pixels).level(1.0)
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except (OSError, SyntaxError, ValueError, TypeError) as exc:
        raise errors.InvalidImageFormatException(
            f"Request has invalid image format: bad EXIF data: {exc}"
        ) from exc


class Picture:
    """One photo: decoded once at full size on first use, upright and RGB, with cached reduced levels.

    ``width``/``height`` are the full-size upright dimensions; every coordinate the pipeline reports is
    in full-size pixels. ``level(scale)`` returns the image at 1/r of full size (r in ``REDUCTIONS``) for
    the largest r with 1/r >= scale. A pixel of level r is the mean of full-size pixels [i r, (i + 1) r),
    so an edge coordinate maps by multiplying with r (the last pixel of a row may cover fewer).
    """

    def __init__(self, data: bytes, max_pixels: int, image: Image.Image | None = None) -> None:
        self._data = data
        self._max_pixels = max_pixels
        self._levels: dict[int, Image.Image] = {}
        self._reductions: tuple[int, ...] = REDUCTIONS
        # Time spent decoding the full-size pixels (the benchmark's decode stage; made on first use).
        self.decode_seconds = 0.0
        if image is not None:
            self._reductions = (1,)
            self._orientation = 1
            self._levels[1] = _to_rgb(image)
            self.width, self.height = image.size
            return
        header = _open_header(data, max_pixels)
        # A JPEG's EXIF is in its header; a PNG's may follow the pixels, so a PNG is decoded first.
        if header.format in ("JPEG", "MPO"):
            self._orientation = _orientation(header)
        else:
            started = time.perf_counter()
            full = _open(data, max_pixels)
            self._orientation = _orientation(full)
            self._levels[1] = self._upright(full)
            self.decode_seconds += time.perf_counter() - started
        width, height = header.size
        self.width, self.height = (height, width) if self._orientation in _SWAPS_AXES else (width, height)

    @classmethod
    def of(cls, image: Image.Image) -> Picture:
        """A picture of an already decoded upright image, at full size only (the pre-levels path)."""
        return cls(b"", 0, image)

    def reduction_for(self, scale: float) -> int:
        """The largest available reduction r with 1/r >= ``scale`` (1 when none is coarse enough)."""
        return next((r for r in self._reductions if r * scale <= 1.0), 1)

    def level(self, scale: float) -> tuple[Image.Image, int]:
        """The upright RGB image at the coarsest level with at least ``scale`` of full size, and its r."""
        reduction = self.reduction_for(scale)
        if 1 not in self._levels:
            started = time.perf_counter()
            self._levels[1] = self._upright(_open(self._data, self._max_pixels))
            self.decode_seconds += time.perf_counter() - started
        if reduction not in self._levels:
            self._levels[reduction] = self._levels[1].reduce(reduction)
        return self._levels[reduction], reduction

    def _upright(self, image: Image.Image) -> Image.Image:
        method = _TRANSPOSE.get(self._orientation)
        return _to_rgb(image if method is None else image.transpose(method))


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG bytes into an HxWx3 uint8 RGB array, EXIF orientation applied.

    Raises InvalidImageFormatException for bytes that are not JPEG/PNG by magic number, truncated or
    unreadable, and ImageTooLargeException when the pixel count exceeds ``max_pixels`` (checked from the
    header, before any pixel is decoded, so decompression bombs cost nothing).
    """
    return np.asarray(decode_pil(data, max_pixels))
