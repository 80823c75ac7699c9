"""The path -> ExternalImageId mapping stays inside Rekognition's pattern and length."""

from __future__ import annotations

import re

import pytest

from facesearch.external_ids import MAX_LENGTH, external_image_id
from facesearch.protocol import model

PATTERN = re.compile(r"[a-zA-Z0-9_.\-:]+")


def test_the_pattern_is_the_service_models():
    shape = model.input_shape("IndexFaces").members["ExternalImageId"]
    assert shape.metadata["pattern"] == PATTERN.pattern
    assert shape.metadata["max"] == MAX_LENGTH


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("ann.jpg", "ann.jpg"),
        ("2024/beach/ann.jpg", "2024:beach:ann.jpg"),
        ("/leading/slash.jpg", "leading:slash.jpg"),
        ("my photo (1).jpg", "my_photo__1_.jpg"),
        ("Zoë/été.png", "Zo_:_t_.png"),
        ("a-b_c.d:e.jpg", "a-b_c.d:e.jpg"),
    ],
)
def test_mapping(path, expected):
    assert external_image_id(path) == expected


def test_long_paths_are_truncated_with_a_distinguishing_hash():
    first = external_image_id("x" * 300 + "/1.jpg")
    second = external_image_id("x" * 300 + "/2.jpg")

    assert len(first) == len(second) == MAX_LENGTH
    assert first != second
    assert PATTERN.fullmatch(first)


def test_an_empty_path_has_no_id():
    with pytest.raises(ValueError, match="empty path"):
        external_image_id("/")
