"""The face pipeline: decode -> detect (with tiles for small faces) -> landmarks -> align -> embed.

Detection reads a box-reduced level of the photo (``Picture.level``) at least twice the detector's input;
landmarks and the aligned face read the full-size pixels, as the embeddings need. Boxes and points are kept
in full-size pixels throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facesearch.domain import BoundingBox, ImageQuality, Landmark, Pose
from facesearch.lazy import once
from facesearch.settings import get_settings
from facesearch.vision import align, landmarks
from facesearch.vision import attributes as face_attributes
from facesearch.vision.decode import Picture
from facesearch.vision.faces import DetectedFace, ImageAnalysis
from facesearch.vision.models import Detector, Embedder, LandmarkModel, nms
from facesearch.vision.pack import ModelPack, get_pack
from facesearch.vision.quality import REKOGNITION_MIN_FACE_RATIO, brightness_and_sharpness

# Rekognition's DetectFaces and IndexFaces report at most the 100 largest faces of an image.
MAX_FACES_PER_IMAGE = 100
# Faces up to this many times the whole-image pass's smallest reliable face must fit whole inside the
# overlap of two tiles, so every face too small for that pass lies whole inside at least one tile.
TILE_OVERLAP_FACES = 1.25
# A tile box with more than this fraction of its area inside a whole-image face box is part of that face.
TILE_INSIDE_FACE = 0.5
# Rekognition's smallest face is 40 px in a 1920x1080 image; we never look for faces under 40 px.
MIN_FACE_PX = 40.0
# A tile's box that touches the tile's inner edge (within this many pixels) is a cut face; the
# neighbouring tile or the whole-image pass sees it whole.
TILE_EDGE_PX = 2.0
# The detector's input (whole image and tiles) is Pillow's antialiased bilinear resize from a level at
# least this many times its own size, as it was from the full-size image: from a level of exactly its size,
# the input is sharper, and gave a false face (score 0.75, stair railings) in the tiles of face-api's
# sample5.jpg. On the dev set, boxes from these levels leave 191 of 194 embeddings within cosine 0.995 of
# the full-size path's and the accuracy unchanged (bench/accuracy.py --reference).
DETECT_SOURCE_OVERSAMPLING = 2.0


def intersection_over_own_area(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each of ``others``, the fraction of ``box``'s area it covers."""
    if len(others) == 0:
        return np.zeros(0)
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


def whole_image_min_face(width: int, height: int, detect_config) -> float:
    """The smallest face (image pixels) the whole-image pass finds reliably."""
    c = detect_config
    return c.min_face_px / min(c.input_width / width, c.input_height / height)


@dataclass(frozen=True)
class TilePlan:
    """Tiles of the detector's input size over the image scaled by ``scale`` (boxes in scaled pixels)."""

    scale: float
    size: tuple[int, int]  # the scaled image's width, height
    boxes: tuple[tuple[int, int, int, int], ...]


def plan_tiles(width: int, height: int, detect_config) -> TilePlan | None:
    """How to find faces down to Rekognition's smallest with the fixed-size detector; None if no tiles.

    The smallest face Rekognition finds is 40 px in a 1920x1080 image; the detector finds faces of
    ``min_face_px`` at its input. The image is scaled once so that such a face becomes ``min_face_px``,
    then covered by overlapping detector-sized tiles; none are needed when the whole-image pass
    already sees that face at ``min_face_px``.
    """
    c = detect_config
    min_face = max(MIN_FACE_PX, REKOGNITION_MIN_FACE_RATIO * max(width, height))
    scale = c.min_face_px / min_face
    if c.input_width >= scale * width and c.input_height >= scale * height:
        return None
    scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
    overlap = TILE_OVERLAP_FACES * whole_image_min_face(width, height, c) * scale

    def starts(size: int, tile: int) -> list[int]:
        if tile >= size:
            return [0]
        count = max(2, math.ceil((size - overlap) / max(tile - overlap, 1)))
        return [round(i * (size - tile) / (count - 1)) for i in range(count)]

    boxes = tuple(
        (x, y, x + c.input_width, y + c.input_height)
        for y in starts(scaled_h, c.input_height)
        for x in starts(scaled_w, c.input_width)
    )
    return TilePlan(scale=scale, size=(scaled_w, scaled_h), boxes=boxes)


def as_picture(image: Picture | Image.Image) -> Picture:
    """A Picture as it is; a decoded image as a one-scale Picture (the full-size reference path)."""
    return image if isinstance(image, Picture) else Picture.of(image)


class FacePipeline:
    """The three models of one pack and the steps between them."""

    def __init__(self, pack: ModelPack, threads: int) -> None:
        self.pack = pack
        self.detector = Detector(pack.detect_file, pack.detect, threads)
        self.landmark_model = LandmarkModel(pack.landmark_file, pack.landmark, threads)
        self.embedder = Embedder(pack.embed_file, pack.embed, threads)
        self.template = np.asarray(pack.embed.template, dtype=np.float64)

    def detect(
        self, picture: Picture | Image.Image, tiled: bool = True, enough: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4, full-size px) and scores of every face: the whole image, plus tiles for small faces.

        With ``enough``, tiles are skipped when the whole-image pass already found that many faces of
        at least its reliable size: tiles only add smaller faces, which would not be among the largest.
        """
        picture = as_picture(picture)
        c = self.pack.detect
        width, height = picture.width, picture.height
        # The whole-image pass squashes the photo to the detector input: any scale at least that big.
        image, reduction = picture.level(
            DETECT_SOURCE_OVERSAMPLING * max(c.input_width / width, c.input_height / height)
        )
        boxes, scores = self.detector.detect(image)
        boxes = boxes * np.float32(reduction)
        plan = plan_tiles(width, height, c) if tiled else None
        if plan is not None and enough is not None:
            sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            if (sides >= whole_image_min_face(width, height, c)).sum() >= enough:
                plan = None
        if plan is None:
            return boxes, scores
        all_boxes, all_scores = [boxes], [scores]
        scaled, _ = picture.level(DETECT_SOURCE_OVERSAMPLING * plan.scale)
        scaled = scaled.resize(plan.size, Image.Resampling.BILINEAR)
        scaled_w, scaled_h = plan.size
        for x0, y0, x1, y1 in plan.boxes:
            tile_boxes, tile_scores = self.detector.detect(scaled.crop((x0, y0, x1, y1)))
            tile_boxes = tile_boxes + np.array([x0, y0, x0, y0], dtype=np.float32)
            cut = (
                ((tile_boxes[:, 0] < x0 + TILE_EDGE_PX) & (x0 > 0))
                | ((tile_boxes[:, 1] < y0 + TILE_EDGE_PX) & (y0 > 0))
                | ((tile_boxes[:, 2] > x1 - TILE_EDGE_PX) & (x1 < scaled_w))
                | ((tile_boxes[:, 3] > y1 - TILE_EDGE_PX) & (y1 < scaled_h))
            )
            all_boxes.append(tile_boxes[~cut] / plan.scale)
            all_scores.append(tile_scores[~cut])
        tile_boxes, tile_scores = np.concatenate(all_boxes[1:]), np.concatenate(all_scores[1:])
        # Tiles are there for faces too small for the whole-image pass: a larger tile box is a piece of
        # a face (or of a body) seen too close, and so is one lying mostly inside a whole-image face.
        sides = np.maximum(tile_boxes[:, 2] - tile_boxes[:, 0], tile_boxes[:, 3] - tile_boxes[:, 1])
        small = sides <= TILE_OVERLAP_FACES * whole_image_min_face(width, height, c)
        inside = np.array(
            [(intersection_over_own_area(b, boxes) > TILE_INSIDE_FACE).any() for b in tile_boxes]
        )
        keep = small & ~inside if len(tile_boxes) else small
        boxes = np.concatenate([boxes, tile_boxes[keep]])
        scores = np.concatenate([scores, tile_scores[keep]])
        keep = nms(boxes, scores, c.nms_iou)
        return boxes[keep], scores[keep]

    def locate(self, picture: Picture | Image.Image, box: np.ndarray) -> np.ndarray:
        """The face's 68 landmarks (full-size px), from the full-size image."""
        return self.landmark_model.locate(as_picture(picture).level(1.0)[0], box)

    def align(self, picture: Picture | Image.Image, points68: np.ndarray) -> np.ndarray:
        """The 112x112 RGB face aligned on the 5-point template (``points68`` in full-size px)."""
        matrix = align.similarity_transform(landmarks.five_points(points68), self.template)
        return align.warp(as_picture(picture).level(1.0)[0], matrix, self.pack.embed.input_size)

    def analyze_image(
        self,
        picture: Picture | Image.Image,
        *,
        embed: bool = True,
        max_faces: int | None = None,
        tiled: bool = True,
        attributes: frozenset[str] = frozenset(),
    ) -> ImageAnalysis:
        """Every face of a photo (or a decoded RGB image), largest first (at most ``max_faces``).

        ``attributes`` (names of ``vision.attributes.MEASURED``) are measured on every face, on the
        full-size image; with none, the attribute models are never loaded.
        """
        picture = as_picture(picture)
        width, height = picture.width, picture.height
        boxes, scores = self.detect(picture, tiled, enough=max_faces)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        limit = MAX_FACES_PER_IMAGE if max_faces is None else min(max_faces, MAX_FACES_PER_IMAGE)
        order = np.argsort(-areas, kind="stable")[:limit]

        def measured(points: np.ndarray) -> face_attributes.FaceAttributes | None:
            # Attribute models read dlib-style chips off the full-size image.
            return face_attributes.measure(picture.level(1.0)[0], points, attributes) if attributes else None

        faces = []
        for i in order:
            box, score = boxes[i], float(scores[i])
            points = self.locate(picture, box)
            aligned = self.align(picture, points)
            brightness, sharpness = brightness_and_sharpness(aligned)
            roll, yaw, pitch = landmarks.head_pose(landmarks.five_points(points))
            x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
            x2, y2 = min(float(width), float(box[2])), min(float(height), float(box[3]))
            faces.append(
                DetectedFace(
                    bounding_box=BoundingBox(
                        left=x1 / width, top=y1 / height, width=(x2 - x1) / width, height=(y2 - y1) / height
                    ),
                    confidence=100.0 * score,
                    landmarks=tuple(
                        Landmark(name, x / width, y / height)
                        for name, x, y in landmarks.rekognition_landmarks(points)
                    ),
                    pose=Pose(roll=roll, yaw=yaw, pitch=pitch),
                    quality=ImageQuality(brightness=brightness, sharpness=sharpness),
                    embedding=self.embedder.embed(aligned) if embed else None,
                    size_ratio=max(x2 - x1, y2 - y1) / max(width, height),
                    attributes=measured(points),
                )
            )
        return ImageAnalysis(width=width, height=height, faces=tuple(faces))


@once
def _pipeline(face_model_version: str) -> FacePipeline:
    return FacePipeline(get_pack(face_model_version), get_settings().intra_op_threads)


def get_pipeline(face_model_version: str | None = None) -> FacePipeline:
    """The pipeline of a pack (default: the settings' or newest), sessions created once per process."""
    return _pipeline(get_pack(face_model_version).face_model_version)


def analyze(
    image: bytes,
    *,
    embed: bool = True,
    max_faces: int | None = None,
    face_model_version: str | None = None,
    attributes: frozenset[str] = frozenset(),
) -> ImageAnalysis:
    """Decode JPEG/PNG bytes (settings.max_image_pixels guard) and find, measure and embed its faces.

    ``max_faces`` keeps only that many largest faces (the rest are not measured, for speed);
    ``attributes`` names the attributes beyond the DEFAULT set to measure. Raises the decode errors of
    ``decode_image``.
    """
    pipeline = get_pipeline(face_model_version)
    picture = Picture(image, get_settings().max_image_pixels)
    return pipeline.analyze_image(picture, embed=embed, max_faces=max_faces, attributes=attributes)
