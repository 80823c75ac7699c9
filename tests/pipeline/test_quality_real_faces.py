"""QualityFilter on real photos: blurred or darkened faces are filtered with the right reason."""

from __future__ import annotations

import io

from PIL import Image, ImageFilter

from facesearch.devtools import registry
from facesearch.operations.quality import apply_quality_filter
from facesearch.settings import REPO_ROOT
from facesearch.vision.pipeline import analyze


def sample_photo(n: int) -> Image.Image:
    (path,) = registry.extract(
        registry.FACE_API, [f"package/demo/sample{n}.jpg"], REPO_ROOT / "build" / "cache" / "samples"
    )
    return Image.open(path).convert("RGB")


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_real_faces_blurred_or_darkened_are_filtered_with_the_right_reason(model_pack):
    photo = sample_photo(1)
    faces = analyze(jpeg(photo)).faces
    kept, unindexed = apply_quality_filter(faces, "AUTO", None)
    assert len(kept) == 3 and unindexed == []
    blurred = analyze(jpeg(photo.filter(ImageFilter.GaussianBlur(12)))).faces
    assert blurred, "the detector still sees the blurred faces"
    assert max(f.quality.sharpness for f in blurred) < min(f.quality.sharpness for f in faces)
    _, unindexed = apply_quality_filter(blurred, "MEDIUM", None)
    assert unindexed and all("LOW_SHARPNESS" in why for _, why in unindexed)
    dark = analyze(jpeg(Image.eval(photo, lambda v: v // 4))).faces
    assert dark, "the detector still sees the darkened faces"
    _, unindexed = apply_quality_filter(dark, "HIGH", None)
    assert unindexed and all("LOW_BRIGHTNESS" in why for _, why in unindexed)


def test_every_labelled_dev_face_passes_the_default_filter(model_pack, facedata):
    paths = sorted({p for paths in facedata["identities"].values() for p in paths})
    rejected = []
    for path in paths:
        faces = analyze((facedata["root"] / path).read_bytes(), embed=False, max_faces=1).faces
        _, unindexed = apply_quality_filter(faces, "AUTO", None)
        rejected.extend((path, why) for _, why in unindexed)
    assert rejected == []
