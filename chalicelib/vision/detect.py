"""RetinaFace-MobileNet0.25 face detector (biubug6 export) on onnxruntime."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .models import ModelSpec, load_model_bytes, make_session
from .track import iou
from .types import Detection

_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
_STEPS = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE_CENTRE, _VARIANCE_SIZE = 0.1, 0.2
_ALIGN = 32  # the largest stride: padding to it keeps every feature map exact
# Landmark order in a mirror image: the right eye becomes the left one, and so on.
_MIRROR_ORDER = [1, 0, 2, 4, 3]


def make_priors(height: int, width: int) -> np.ndarray:
    """Anchors (cx, cy, w, h) in input pixels, in the order the network emits them.

    Per stride: rows, then columns, then anchor sizes (biubug6 PriorBox).
    """
    out = []
    for step, sizes in zip(_STEPS, _ANCHOR_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step, (np.arange(cols) + 0.5) * step, indexing="ij"
        )
        k = len(sizes)
        grid = np.empty((rows, cols, k, 4), dtype=np.float32)
        grid[..., 0] = cx[..., None]
        grid[..., 1] = cy[..., None]
        grid[..., 2] = np.asarray(sizes, dtype=np.float32)
        grid[..., 3] = np.asarray(sizes, dtype=np.float32)
        out.append(grid.reshape(-1, 4))
    return np.concatenate(out, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy IoU non-maximum suppression; returns kept indices in descending score order."""
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


class RetinaFaceDetector:
    def __init__(
        self,
        session: Any,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.4,
        max_side: int = 960,
        min_side: int = 0,
    ) -> None:
        self.session = session
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)
        # Small images (reference photos, thumbnails) are upscaled to this longer side first:
        # landmarks, and so the alignment, are more precise on a face of ~100+ px.
        self.min_side = int(min_side)
        self._input_name = session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, threads: int = 1, spinning: bool = False,
                  **kw: Any) -> RetinaFaceDetector:
        return cls(make_session(load_model_bytes(spec), threads=threads, spinning=spinning), **kw)

    def _priors_for(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._priors:
            if len(self._priors) > 16:  # frame sizes are few per deployment; bound the cache
                self._priors.clear()
            self._priors[key] = make_priors(height, width)
        return self._priors[key]

    def input_scale(self, height: int, width: int) -> float:
        """The factor an image of this size is resized by before the network sees it."""
        if self.min_side and max(height, width) < self.min_side:
            return self.min_side / max(height, width)
        return min(1.0, self.max_side / max(height, width))

    def _prepare(
        self, image_bgr: np.ndarray, scale: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        elif image_bgr.shape[2] == 4:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
        h, w = image_bgr.shape[:2]
        if scale is None:
            scale = self.input_scale(h, w)
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            image_bgr = cv2.resize(image_bgr, size, interpolation=interp)
        rh, rw = image_bgr.shape[:2]
        ph, pw = -(-rh // _ALIGN) * _ALIGN, -(-rw // _ALIGN) * _ALIGN
        # Padding after mean subtraction fills with the mean colour (zeros), which reads as
        # featureless background to the network.
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        blob[0, :, :rh, :rw] = (image_bgr.astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)
        # Actual per-axis scale (after rounding) so boxes map back exactly.
        return blob, np.array([rw / w, rh / h], dtype=np.float32)

    def detect(self, image_bgr: np.ndarray, scale: float | None = None,
               min_score: float | None = None) -> list[Detection]:
        """Faces in the image; `scale` overrides the resize factor chosen from its size and
        `min_score` the score threshold (candidates for a second look)."""
        h, w = image_bgr.shape[:2]
        if h == 0 or w == 0:
            return []
        blob, scale = self._prepare(image_bgr, scale)
        loc, conf, landms = self.session.run(self._output_names, {self._input_name: blob})
        all_priors = self._priors_for(blob.shape[2], blob.shape[3])
        if len(all_priors) != loc.shape[1]:
            # A different export (other strides/anchors) would decode to garbage silently.
            raise ValueError(f"detector emitted {loc.shape[1]} anchors, expected {len(all_priors)}")
        scores = conf[0, :, 1]
        idx = np.flatnonzero(scores >= (self.score_threshold if min_score is None else min_score))
        if idx.size == 0:
            return []
        priors = all_priors[idx]
        loc, landms, scores = loc[0, idx], landms[0, idx], scores[idx]

        centre = priors[:, :2] + loc[:, :2] * _VARIANCE_CENTRE * priors[:, 2:]
        size = priors[:, 2:] * np.exp(loc[:, 2:] * _VARIANCE_SIZE)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        points = (
            priors[:, None, :2] + landms.reshape(-1, 5, 2) * _VARIANCE_CENTRE * priors[:, None, 2:]
        )

        keep = nms(boxes, scores, self.nms_threshold)
        boxes = boxes[keep] / np.tile(scale, 2)
        points = points[keep] / scale
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return [
            Detection(
                box=boxes[i].astype(np.float32),
                score=float(scores[keep[i]]),
                landmarks=points[i].astype(np.float32),
            )
            for i in range(len(keep))
        ]

    def detect_near(self, image_bgr: np.ndarray, box: np.ndarray, margin: float = 1.0,
                    scale: float | None = None) -> list[Detection]:
        """Faces in the region around `box` (grown by `margin` face sizes on each side), at the
        scale the whole image would be detected at (or `scale`), in image coordinates.

        Between full-frame detections a tracked face is looked for only here: the region of a
        60 px face in a 640 px frame costs a tenth of the frame."""
        h, w = image_bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        half = max(x2 - x1, y2 - y1) * (0.5 + margin)
        crop, xa, ya = crop_around(image_bgr, (x1 + x2) / 2, (y1 + y2) / 2, half)
        if crop is None:
            return []
        found = self.detect(crop, scale=self.input_scale(h, w) if scale is None else scale)
        offset = np.array([xa, ya], np.float32)
        return [Detection(d.box + np.tile(offset, 2), d.score, d.landmarks + offset)
                for d in found]

    def mirrored_landmarks(self, image_bgr: np.ndarray, det: Detection,
                           scale: float | None = None) -> np.ndarray | None:
        """The face's five landmarks found again in the mirror image of a crop around it,
        mapped back to image coordinates (None when the mirror pass does not find it).

        Averaging them with the first pass's landmarks cancels part of the detector's
        left-right bias and noise, which steadies the alignment the recognizer depends on. The
        crop (twice the face box) is resized by the factor the whole image was, so the face is
        seen at the same size (`scale`: that factor, when `image_bgr` is itself a crop of the
        frame); it costs one small detector run per face.
        """
        return self._found_again(image_bgr, det, scale, mirror=True)

    def landmarks_at(self, image_bgr: np.ndarray, det: Detection,
                     scale: float) -> np.ndarray | None:
        """The face's five landmarks found again in a crop around it seen at `scale` (None when
        that pass does not find it): a face found in a downscaled frame, located again at full
        size, where its eyes and mouth span four times the pixels."""
        return self._found_again(image_bgr, det, scale, mirror=False)

    def _found_again(self, image_bgr: np.ndarray, det: Detection, scale: float | None,
                     mirror: bool) -> np.ndarray | None:
        h, w = image_bgr.shape[:2]
        scale = self.input_scale(h, w) if scale is None else scale
        x1, y1, x2, y2 = (float(v) for v in det.box[:4])
        crop, xa, ya = crop_around(image_bgr, (x1 + x2) / 2, (y1 + y2) / 2,
                                   max(x2 - x1, y2 - y1))
        if crop is None:
            return None
        cw = crop.shape[1]
        if mirror:
            crop = np.ascontiguousarray(crop[:, ::-1])
            want = np.array([cw - (x2 - xa), y1 - ya, cw - (x1 - xa), y2 - ya], np.float32)
        else:
            want = np.array([x1 - xa, y1 - ya, x2 - xa, y2 - ya], np.float32)
        found = self.detect(crop, scale=scale)
        if not found:
            return None
        ious = [iou(d.box, want) for d in found]
        best = int(np.argmax(ious))
        if ious[best] < 0.5:
            return None
        points = found[best].landmarks.reshape(5, 2).astype(np.float32)
        if mirror:
            points = points[_MIRROR_ORDER]
            points[:, 0] = cw - points[:, 0]
        points[:, 0] += xa
        points[:, 1] += ya
        return points


def crop_around(image: np.ndarray, cx: float, cy: float,
                half: float) -> tuple[np.ndarray | None, int, int]:
    """The square of side 2*half centred on (cx, cy), clipped to the image, and its top-left
    corner; None for the crop when too little of it lies inside the image."""
    h, w = image.shape[:2]
    xa, ya = max(0, int(cx - half)), max(0, int(cy - half))
    xb, yb = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    if xb - xa < 8 or yb - ya < 8:
        return None, xa, ya
    return image[ya:yb, xa:xb], xa, ya
