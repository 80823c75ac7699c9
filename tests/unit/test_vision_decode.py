"""Image decoding: formats by magic bytes, EXIF orientation, colour modes, truncation, size guards."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facesearch import errors
from facesearch.vision.decode import Picture, decode_image

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png_rgb_round_trips_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(pixels), "PNG"), LIMIT)
    assert decoded.dtype == np.uint8
    assert decoded.shape == (30, 40, 3)
    assert np.array_equal(decoded, pixels)


def test_jpeg_decodes_to_rgb_close_to_source():
    pixels = np.full((32, 48, 3), (200, 40, 90), dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(pixels), "JPEG", quality=95), LIMIT)
    assert decoded.shape == (32, 48, 3)
    assert np.abs(decoded.astype(int) - pixels).max() <= 6


def test_exif_orientation_is_applied():
    # A 40x20 image whose left half is red; orientation 6 means "rotate 90 degrees clockwise to display".
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif), LIMIT)
    assert decoded.shape == (40, 20, 3)
    # After a clockwise turn the original left half is on top.
    assert decoded[:18, :, 0].mean() > 200
    assert decoded[22:, :, 0].mean() < 50


def test_grey_jpeg_becomes_three_equal_channels():
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1)), "L")
    decoded = decode_image(encode(grey, "JPEG", quality=95), LIMIT)
    assert decoded.shape == (16, 64, 3)
    assert np.array_equal(decoded[..., 0], decoded[..., 1])
    assert np.array_equal(decoded[..., 1], decoded[..., 2])


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (24, 24), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode_image(encode(cmyk, "JPEG", quality=95), LIMIT)
    assert decoded.shape == (24, 24, 3)
    red, green, blue = decoded.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_png_keeps_its_top_eight_bits():
    values = np.array([[0, 0x4000, 0x8000, 0xFFFF]], dtype=np.uint16)
    image = Image.fromarray(values)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data, LIMIT)
    assert decoded[0, :, 0].tolist() == [0, 0x40, 0x80, 0xFF]


def test_transparent_png_shows_white_behind_transparency():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (10, 20, 30, 255)
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), LIMIT)
    assert decoded[0, 0].tolist() == [10, 20, 30]
    assert decoded[0, 7].tolist() == [255, 255, 255]


def test_truncated_jpeg_is_invalid_image_format():
    pixels = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", quality=90)
    with pytest.raises(errors.InvalidImageFormatException) as caught:
        decode_image(data[: len(data) // 2], LIMIT)
    assert caught.value.code == "InvalidImageFormatException"
    assert "truncated" in caught.value.message


def test_truncated_png_is_invalid_image_format():
    pixels = np.random.default_rng(2).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "PNG")
    with pytest.raises(errors.InvalidImageFormatException) as caught:
        decode_image(data[: len(data) // 3], LIMIT)
    assert caught.value.code == "InvalidImageFormatException"
    assert caught.value.message.startswith("Request has invalid image format")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, I am not an image",
        encode(Image.new("RGB", (8, 8)), "GIF"),
        encode(Image.new("RGB", (8, 8)), "BMP"),
        encode(Image.new("RGB", (8, 8)), "WEBP"),
    ],
    ids=["empty", "text", "gif", "bmp", "webp"],
)
def test_non_jpeg_png_bytes_are_rejected_by_magic(data):
    with pytest.raises(errors.InvalidImageFormatException) as caught:
        decode_image(data, LIMIT)
    assert caught.value.code == "InvalidImageFormatException"
    assert caught.value.message == "Request has invalid image format: the bytes are neither JPEG nor PNG"


def test_jpeg_magic_followed_by_garbage_is_invalid():
    with pytest.raises(errors.InvalidImageFormatException) as caught:
        decode_image(b"\xff\xd8\xff" + bytes(range(256)) * 4, LIMIT)
    assert caught.value.code == "InvalidImageFormatException"
    assert caught.value.message.startswith("Request has invalid image format")


def test_image_over_the_pixel_limit_is_too_large():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(errors.ImageTooLargeException) as caught:
        decode_image(data, max_pixels=59_999)
    assert caught.value.code == "ImageTooLargeException"
    assert caught.value.message == "Image is 300x200 = 60000 pixels, over the limit of 59999 pixels"
    assert decode_image(data, max_pixels=60_000).shape == (200, 300, 3)


def test_decompression_bomb_is_refused_from_its_header():
    # A 60000x60000 PNG header (3.6 gigapixels) in a few dozen bytes: refused before any pixel is inflated.
    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
    bomb += png_chunk(b"IEND", b"")
    with pytest.raises(errors.ImageTooLargeException) as caught:
        decode_image(bomb, LIMIT)
    assert caught.value.code == "ImageTooLargeException"
    assert caught.value.message.startswith("Image is too large to decode safely")
    assert "3600000000 pixels" in caught.value.message


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth RGB picture (JPEG-friendly), different along each axis and channel."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1).astype(
        np.uint8
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_picture_offers_the_coarsest_level_that_suffices(fmt):
    pixels = gradient(1920, 1080)
    picture = Picture(encode(Image.fromarray(pixels), fmt, quality=95), LIMIT)
    assert (picture.width, picture.height) == (1920, 1080)
    if fmt == "JPEG":
        assert picture.decode_seconds == 0.0  # the header only, until a level is asked for
    full = np.asarray(picture.level(1.0)[0], dtype=float)
    for scale, reduction in [(0.1, 8), (320 / 1920, 4), (0.25, 4), (0.26, 2), (0.5, 2), (0.51, 1), (3.0, 1)]:
        image, r = picture.level(scale)
        assert r == reduction
        assert image.size == (1920 // r, 1080 // r)
        assert image.mode == "RGB"
        # Level pixel i is the mean of the decoded full-size pixels [i r, (i + 1) r).
        block = full[400 : 400 + r, 800 : 800 + r].reshape(-1, 3).mean(axis=0)
        assert np.abs(np.asarray(image)[400 // r, 800 // r].astype(float) - block).max() <= 0.5
    assert picture.decode_seconds > 0.0


def test_a_decoded_image_has_only_its_full_size():
    picture = Picture.of(Image.fromarray(gradient(640, 480)))
    image, reduction = picture.level(0.125)
    assert reduction == 1 and image.size == (640, 480)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_holds_at_every_scale(orientation):
    pixels = gradient(400, 200)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif)
    picture = Picture(data, LIMIT)
    upright = decode_image(data, LIMIT)
    assert (picture.height, picture.width) == upright.shape[:2]
    assert (picture.width, picture.height) == ((200, 400) if orientation in (6, 8) else (400, 200))
    half, reduction = picture.level(0.5)
    assert reduction == 2 and half.size == (picture.width // 2, picture.height // 2)
    shrunk = upright.astype(float).reshape(picture.height // 2, 2, picture.width // 2, 2, 3).mean(axis=(1, 3))
    assert np.abs(np.asarray(half, dtype=float) - shrunk).mean() < 3


def test_truncated_jpeg_fails_when_a_reduced_level_is_asked_for():
    data = encode(Image.fromarray(gradient(800, 600)), "JPEG", quality=90)
    picture = Picture(data[: len(data) // 2], LIMIT)
    with pytest.raises(errors.InvalidImageFormatException) as caught:
        picture.level(0.25)
    assert caught.value.code == "InvalidImageFormatException"
    assert "truncated" in caught.value.message
