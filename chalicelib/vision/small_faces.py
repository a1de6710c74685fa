"""Small faces in a frame shrunk for detection.

The gateway sends 1920 px frames and the detector sees them at 960: a 40 px face reaches the
network at 20 px, near RetinaFace's smallest anchor, and is found 77 % of the time. Detecting the
whole frame at full size finds them all at 4.4x the CPU. Here the shrunk pass runs down to a low
score, and only the regions around the candidates it was unsure of are detected again at full
size: all the 40 px faces for 1.11x the CPU (benchmarks/small_faces.py, option d2;
docs/performance.md). A face found at full size also has landmarks from four times the pixels.
"""

from __future__ import annotations

import numpy as np

from .detect import RetinaFaceDetector, nms
from .types import Detection

# The shrunk pass reports candidates down to this score (the detector keeps 0.7 otherwise).
CANDIDATE_SCORE = 0.3
# A candidate with this score (the quality gate's) or this short side at the network's input
# is taken as found: the shrunk pass finds faces of 32 px there at >= 0.9 (detect_recall.py).
SURE_SCORE = 0.9
SURE_INPUT_PX = 32.0
# A region reaches this many face sizes from the candidate's centre.
REGION_FACES = 2.0
# Where the regions cover more of the frame than this, one full-size pass costs less.
MAX_REGION_SHARE = 0.6
MERGE_NMS = 0.4  # RetinaFace's own


def sure_px(detector: RetinaFaceDetector, shape: tuple[int, ...]) -> float:
    """The short side, in frame pixels, from which the shrunk pass is trusted on its own."""
    return SURE_INPUT_PX / detector.input_scale(*shape[:2])


def detect_small_too(detector: RetinaFaceDetector, image: np.ndarray) -> list[Detection]:
    """The frame's faces: the shrunk pass's sure ones, and around each unsure candidate what a
    full-size pass finds (NMS across both)."""
    h, w = image.shape[:2]
    if detector.input_scale(h, w) >= 1.0:
        return detector.detect(image)
    big = sure_px(detector, image.shape)
    out: list[Detection] = []
    rects: list[list[int]] = []
    for d in detector.detect(image, min_score=CANDIDATE_SCORE):
        if d.score >= SURE_SCORE or min(d.width, d.height) >= big:
            if d.score >= detector.score_threshold:
                out.append(d)
            continue
        rects.append(region(d, w, h))
    rects = joined(rects)
    if sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects) > MAX_REGION_SHARE * h * w:
        rects = [[0, 0, w, h]]  # a dense crowd
    for x0, y0, x1, y1 in rects:
        out += shifted(detector.detect(image[y0:y1, x0:x1], scale=1.0), x0, y0)
    return merged(out)


def region(d: Detection, w: int, h: int) -> list[int]:
    cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
    half = max(d.width, d.height) * REGION_FACES
    return [max(0, int(cx - half)), max(0, int(cy - half)),
            min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))]


def joined(rects: list[list[int]]) -> list[list[int]]:
    """Overlapping rectangles (x0, y0, x1, y1) replaced by their bounding box until none
    overlap: no pixel is detected twice."""
    rects = [list(r) for r in rects]
    merged_any = True
    while merged_any:
        merged_any = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]),
                                max(a[3], b[3])]
                    del rects[j]
                    merged_any = True
                    break
            if merged_any:
                break
    return rects


def shifted(dets: list[Detection], x0: int, y0: int) -> list[Detection]:
    off = np.array([x0, y0], np.float32)
    return [Detection(d.box + np.tile(off, 2), d.score, d.landmarks + off) for d in dets]


def merged(dets: list[Detection]) -> list[Detection]:
    """One detection per face where passes overlap: the higher score's."""
    if not dets:
        return []
    boxes = np.stack([d.box for d in dets])
    keep = nms(boxes, np.array([d.score for d in dets], np.float32), MERGE_NMS)
    return [dets[i] for i in keep]
