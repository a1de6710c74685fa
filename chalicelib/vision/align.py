"""Similarity-transform alignment of a face onto the ArcFace 112x112 template."""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112

# Five points in image order (right eye, left eye, nose, right mouth, left mouth) for 112x112.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping src points onto dst, as a 2x3 matrix.

    Used instead of cv2.estimateAffinePartial2D because that defaults to RANSAC, which can drop
    a landmark and make the crop depend on a random inlier set; the recognizer was trained on
    all-five-point least-squares alignment.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0  # avoid a reflection
    rot = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / n
    scale = float((s * d).sum() / var_src) if var_src > 0 else 1.0
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp the face given by its 5 landmarks into a 112x112x3 BGR uint8 crop."""
    m = similarity_transform(
        np.asarray(landmarks, dtype=np.float32).reshape(5, 2), ARCFACE_TEMPLATE
    )
    return cv2.warpAffine(
        image_bgr,
        m,
        (CROP_SIZE, CROP_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


# The face itself inside the 112x112 crop: brows to chin, cheek to cheek (the template's eyes
# sit at x 38 and 74, its mouth at y 92). The crop's corners are background and may fall off
# the frame harmlessly; this region may not.
FACE_REGION = (22.0, 30.0, 90.0, 110.0)
_GRID = 12
_FACE_POINTS = np.stack([g.ravel() for g in np.meshgrid(
    np.linspace(FACE_REGION[0], FACE_REGION[2], _GRID),
    np.linspace(FACE_REGION[1], FACE_REGION[3], _GRID))], axis=1)


def outside_fraction(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> float:
    """Share of the face region of the aligned crop whose source lies outside the frame.

    Where it is not 0 the crop holds black border in place of part of the face (warpAffine's
    constant border), and the embedding is of a different, partial face.
    """
    m = similarity_transform(
        np.asarray(landmarks, dtype=np.float32).reshape(5, 2), ARCFACE_TEMPLATE
    )
    inverse = cv2.invertAffineTransform(m)
    src = _FACE_POINTS @ inverse[:, :2].T + inverse[:, 2]
    h, w = frame_shape[:2]
    inside = (src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)
    return float(1.0 - inside.mean())
