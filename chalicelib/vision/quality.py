"""Quality gate: refuse faces too small, too blurred or too uncertain to match reliably."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .align import outside_fraction
from .types import Detection

TOO_SMALL = "too_small"
TOO_BLURRY = "too_blurry"
LOW_SCORE = "low_score"
OFF_FRONTAL = "off_frontal"
CUT_BY_EDGE = "cut_by_edge"


@dataclass(frozen=True)
class QualityPolicy:
    # Shorter side of the detector box, in source pixels.
    min_face_px: int = 32
    # Variance of the Laplacian of the grey 112x112 aligned crop (see sharpness()). Measured on
    # the 5,698 LFW dev faces: 0.1th percentile 17.4, 99.98% pass. The same crops blurred with
    # sigma 4 score at most 5.6 (all fail), sigma 3 at most 10.4, sigma 2 median 8.8 (68% fail);
    # sigma-2 crops still keep a median cosine of 0.89 to the sharp crop, so the gate is set to
    # drop faces that are badly blurred, not merely soft.
    min_sharpness: float = 10.0
    # RetinaFace score of the LFW dev faces: 0.1th percentile 0.982, 99.98% >= 0.9. Detections
    # between the detector threshold (0.7) and this are counted, not matched.
    min_detector_score: float = 0.9
    # Horizontal offset of the nose from the eyes' midpoint, in inter-ocular distances (0 when
    # frontal; > 1 when the nose is past the far eye, i.e. towards profile). 800 LFW dev faces:
    # 99th percentile 0.54, 99.9th 0.95; profile faces in the crowd photos score 1.2 to 3.3.
    max_yaw_ratio: float = 1.0
    # Share of the face (brows to chin, cheek to cheek, as aligned) that may lie outside the
    # image: where more does, the aligned crop holds black border in place of part of the face
    # and embeds as a different, partial face (in a camera frame, touches_edge refuses more).
    max_outside: float = 0.05


def sharpness(crop_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey aligned crop: low when fine detail is gone.

    Measured on the aligned crop, so it is comparable across face sizes.
    """
    grey = crop_bgr if crop_bgr.ndim == 2 else cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_ratio(landmarks: np.ndarray) -> float:
    right_eye, left_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    iod = float(np.linalg.norm(left_eye - right_eye))
    return abs(float(nose[0] - (right_eye[0] + left_eye[0]) / 2)) / max(iod, 1e-6)


def face_quality(det: Detection, crop_bgr: np.ndarray) -> float:
    """0..1, higher is better: which faces of a track to embed and show an officer.

    Detector confidence, size (saturating at the recognizer's 112 px input), sharpness
    (saturating at the LFW median of ~130) and frontality, multiplied.
    """
    size = min(1.0, min(det.width, det.height) / 112.0)
    sharp = min(1.0, sharpness(crop_bgr) / 130.0)
    frontal = max(0.0, 1.0 - yaw_ratio(det.landmarks))
    return float(det.score) * size * sharp * (0.5 + 0.5 * frontal)


def touches_edge(box: np.ndarray, frame_shape: tuple[int, ...], margin: float = 1.0) -> bool:
    """The detector's box reaches the frame's edge, where detect() clipped it: part of the face
    lies outside. Applied to camera frames only (FacePipeline.detect's `stream`): a passer-by
    there is entering or leaving and is seen whole in the frames around, while a reference
    photo is often cropped tight to the face (16 of 600 faces/dev photos touch an edge, and
    their aligned faces lie inside the frame: `outside_fraction` is the check there)."""
    h, w = frame_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return x1 <= margin or y1 <= margin or x2 >= w - margin or y2 >= h - margin


def assess(
    image_bgr: np.ndarray, det: Detection, crop_bgr: np.ndarray, policy: QualityPolicy
) -> str | None:
    """None when the face passes, else a short reason code (cheapest checks first)."""
    if min(det.width, det.height) < policy.min_face_px:
        return TOO_SMALL
    if det.score < policy.min_detector_score:
        return LOW_SCORE
    if touches_edge(det.box, image_bgr.shape, margin=max(det.width, det.height)) and (
            outside_fraction(det.landmarks, image_bgr.shape) > policy.max_outside):
        return CUT_BY_EDGE  # (only a face within a face's size of the edge can be cut)
    if yaw_ratio(det.landmarks) > policy.max_yaw_ratio:
        return OFF_FRONTAL
    if sharpness(crop_bgr) < policy.min_sharpness:
        return TOO_BLURRY
    return None
