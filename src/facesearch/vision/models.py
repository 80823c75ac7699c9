"""One small wrapper per ONNX model, one verb each: Detector.detect, LandmarkModel.locate, Embedder.embed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from facesearch.vision.pack import DetectConfig, EmbedConfig, LandmarkConfig

# Without this, onnxruntime fuses the weight-only QDQ pairs into integer kernels that run 20-140 % slower
# than fp32 on these small CNNs; with it, the int8 weights are dequantized once at load.
DISABLE_QUANT_QDQ = ("session.disable_quant_qdq", "1")


def create_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with the project's options (``threads`` intra-op threads, no QDQ fusion).

    At ORT's default ENABLE_ALL, whose blocked (NCHWc) layout makes all three models 3-4x faster than
    ENABLE_EXTENDED once the pack's graph rewrites (devtools/onnx_graph.py) removed what it could not
    keep blocked (bench/embed_floor.py).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry(*DISABLE_QUANT_QDQ)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class Detector:
    """UltraFace RFB-320: whole image squashed to the input size; outputs are already decoded."""

    def __init__(self, path: Path, config: DetectConfig, threads: int) -> None:
        self.config = config
        self.session = create_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]  # scores, boxes

    def detect(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N, 4: x1, y1, x2, y2 in ``image`` pixels) and scores (N, 0..1), after NMS."""
        c = self.config
        resized = image.resize((c.input_width, c.input_height), Image.Resampling.BILINEAR)
        x = (np.asarray(resized, dtype=np.float32) - c.mean) / c.scale
        x = x.transpose(2, 0, 1)[np.newaxis]
        scores, boxes = self.session.run(self.output_names, {self.input_name: x})
        # Column 1 of the softmaxed scores is "face"; boxes are x1, y1, x2, y2 as ratios of the input.
        face = scores[0, :, 1]
        mask = face > c.score_threshold
        kept_boxes = boxes[0, mask] * np.array(image.size * 2, dtype=np.float32)
        kept_scores = face[mask]
        keep = nms(kept_boxes, kept_scores, c.nms_iou)
        return kept_boxes[keep], kept_scores[keep]


class LandmarkModel:
    """68-point landmarks from a square grey crop (side = box height, centred on the box, zero-padded)."""

    def __init__(self, path: Path, config: LandmarkConfig, threads: int) -> None:
        self.config = config
        self.session = create_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def locate(self, image: Image.Image, box: np.ndarray) -> np.ndarray:
        """The 68 (x, y) landmarks of the face in ``box`` (x1, y1, x2, y2), in ``image`` pixels."""
        side = float(box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        size = max(1, round(side))
        # Pillow pads a crop that leaves the image with zeros, which is the padding the model expects.
        crop = image.crop((x0, y0, x0 + size, y0 + size)).convert("L")
        crop = crop.resize((self.config.input_size, self.config.input_size), Image.Resampling.BILINEAR)
        x = (np.asarray(crop, dtype=np.float32) / self.config.scale)[np.newaxis, np.newaxis]
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        return out[0].reshape(-1, 2).astype(np.float64) * size + np.array([x0, y0], dtype=np.float64)


class Embedder:
    """Face embedding of an aligned 112x112 crop, L2-normalised."""

    def __init__(self, path: Path, config: EmbedConfig, threads: int) -> None:
        self.config = config
        self.session = create_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def embed(self, face: np.ndarray) -> np.ndarray:
        """The unit-length float32 embedding of an aligned HxWx3 RGB uint8 face crop."""
        c = self.config
        pixels = face[:, :, ::-1] if c.channel_order == "BGR" else face
        x = ((pixels.astype(np.float32) - c.mean) / c.scale).transpose(2, 0, 1)[np.newaxis]
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x)})
        vector = out[0].astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)
