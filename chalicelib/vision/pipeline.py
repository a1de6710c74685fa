"""Frame -> detected, aligned, quality-gated and embedded faces."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .align import align_face
from .decode import FrameDecodeError, decode_jpeg
from .detect import RetinaFaceDetector
from .embed import SFaceRecognizer
from .quality import CUT_BY_EDGE, QualityPolicy, assess, face_quality, touches_edge
from .small_faces import detect_small_too, sure_px
from .types import Detection

__all__ = [
    "FaceObservation",
    "GatedFace",
    "GatedFrame",
    "FacePipeline",
    "FrameAnalysis",
    "FrameDecodeError",
    "decode_jpeg",
]


@dataclass
class GatedFace:
    """A detected face that passed the quality gate, aligned, not yet embedded."""

    detection: Detection
    crop: np.ndarray  # aligned 112x112 BGR uint8
    quality: float  # 0..1, see quality.face_quality


@dataclass
class FaceObservation:
    detection: Detection
    crop: np.ndarray  # aligned 112x112 BGR uint8
    embedding: np.ndarray  # (128,) float32, L2-normalised


@dataclass
class FrameAnalysis:
    faces: list[FaceObservation]
    rejected: dict[str, int] = field(default_factory=dict)  # quality reason -> count
    timings_ms: dict[str, float] = field(default_factory=dict)  # ms per stage
    refused: list[Detection] = field(default_factory=list)  # the faces the gate kept out


@dataclass
class GatedFrame:
    faces: list[GatedFace]
    rejected: dict[str, int]
    timings_ms: dict[str, float]
    refused: list[Detection] = field(default_factory=list)


class FacePipeline:
    def __init__(
        self,
        detector: RetinaFaceDetector,
        recognizer: SFaceRecognizer,
        policy: QualityPolicy,
        mirror_landmarks: bool = False,
        landmarks_full_size: bool = False,
        small_faces_full_size: bool = False,
    ) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.policy = policy
        # Average each gated face's landmarks with those of a mirror pass (see
        # RetinaFaceDetector.mirrored_landmarks) and align again from them.
        self.mirror_landmarks = mirror_landmarks
        # Steady a face of a frame detected shrunk at the frame's full size (both passes).
        self.landmarks_full_size = landmarks_full_size
        # Look again at full size where a shrunk frame's pass was unsure (vision/small_faces).
        self.small_faces_full_size = small_faces_full_size

    @property
    def model_id(self) -> str:
        return self.recognizer.model_id

    def detect(self, image_bgr: np.ndarray, steady: bool = True,
               stream: bool = False) -> GatedFrame:
        """Detect, align and gate; embedding is left to the caller (it may pick the best few).

        `steady=False` leaves out the mirror pass: the stream path runs it (`steadied`) only on
        the few faces of a track it embeds."""
        t0 = time.perf_counter()
        if self.small_faces_full_size:
            detections = detect_small_too(self.detector, image_bgr)
        else:
            detections = self.detector.detect(image_bgr)
        return self._gate(image_bgr, detections, time.perf_counter() - t0, steady, stream)

    def detect_near(self, image_bgr: np.ndarray, box: np.ndarray) -> GatedFrame:
        """Detect, align and gate in the region around `box` only (a tracked face's predicted
        place); timed as its own stage, `region`."""
        t0 = time.perf_counter()
        scale = 1.0 if self.small_faces_full_size and self._unsure(image_bgr, box) else None
        detections = self.detector.detect_near(image_bgr, box, scale=scale)
        gated = self._gate(image_bgr, detections, 0.0, steady=False, stream=True)
        gated.timings_ms["region"] = (time.perf_counter() - t0) * 1e3 - gated.timings_ms["align"]
        return gated

    def _unsure(self, image_bgr: np.ndarray, box: np.ndarray) -> bool:
        """A face the shrunk pass would be unsure of: small, in a frame detected shrunk."""
        shape = image_bgr.shape
        return (self.detector.input_scale(*shape[:2]) < 1.0
                and min(box[2] - box[0], box[3] - box[1]) < sure_px(self.detector, shape))

    def _gate(self, image_bgr: np.ndarray, detections: list[Detection], detect_s: float,
              steady: bool, stream: bool = False) -> GatedFrame:
        t1 = time.perf_counter()
        kept: list[GatedFace] = []
        refused: list[Detection] = []
        rejected: dict[str, int] = {}
        mirror_s = 0.0
        for det in detections:
            crop = align_face(image_bgr, det.landmarks)
            reason = assess(image_bgr, det, crop, self.policy)
            if reason is None and stream and touches_edge(det.box, image_bgr.shape):
                reason = CUT_BY_EDGE
            if reason is None:
                if steady and self.mirror_landmarks:
                    tm = time.perf_counter()
                    det, crop = self._steadied(image_bgr, det, crop)
                    mirror_s += time.perf_counter() - tm
                kept.append(GatedFace(det, crop, face_quality(det, crop)))
            else:
                rejected[reason] = rejected.get(reason, 0) + 1
                refused.append(det)
        t2 = time.perf_counter()
        timings = {"detect": detect_s * 1e3, "mirror": mirror_s * 1e3,
                   "align": (t2 - t1 - mirror_s) * 1e3}
        return GatedFrame(kept, rejected, timings, refused)

    def steadied_crop(self, image_bgr: np.ndarray, det: Detection, crop: np.ndarray,
                      scale: float | None = None) -> np.ndarray:
        """The aligned crop of a face detected with steady=False, as detect() would have made
        it; `image_bgr` may be a region of the frame around the face, the frame's detection
        scale then given as `scale` (see RetinaFaceDetector.mirrored_landmarks)."""
        if not self.mirror_landmarks:
            return crop
        return self._steadied(image_bgr, det, crop, scale)[1]

    def _steadied(
        self, image_bgr: np.ndarray, det: Detection, crop: np.ndarray,
        scale: float | None = None,
    ) -> tuple[Detection, np.ndarray]:
        if scale is None:
            scale = self.detector.input_scale(*image_bgr.shape[:2])
        if self.landmarks_full_size and scale < 1.0:
            scale = 1.0
            again = self.detector.landmarks_at(image_bgr, det, scale)
            if again is not None:
                det = Detection(det.box, det.score, again)
                crop = align_face(image_bgr, det.landmarks)
        mirrored = self.detector.mirrored_landmarks(image_bgr, det, scale)
        if mirrored is None:
            return det, crop
        points = (det.landmarks.reshape(5, 2) + mirrored) / 2
        det = Detection(det.box, det.score, points.astype(np.float32))
        return det, align_face(image_bgr, det.landmarks)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        return self.recognizer.embed(crops)

    def analyze(self, image_bgr: np.ndarray) -> FrameAnalysis:
        return self.analyze_many([image_bgr])[0]

    def analyze_many(self, images: Sequence[np.ndarray]) -> list[FrameAnalysis]:
        """Analyse frames, embedding every passing face of every frame in one batch."""
        staged = [self.detect(image) for image in images]
        crops = [face.crop for frame in staged for face in frame.faces]
        t0 = time.perf_counter()
        embeddings = self.recognizer.embed(crops)
        embed_ms = (time.perf_counter() - t0) * 1e3
        results = []
        offset = 0
        for frame in staged:
            n = len(frame.faces)
            faces = [
                FaceObservation(f.detection, f.crop, embeddings[offset + i])
                for i, f in enumerate(frame.faces)
            ]
            # Batch cost shared out by face count (per-face cost is flat on CPU).
            timings = {**frame.timings_ms, "embed": embed_ms * n / len(crops) if crops else 0.0}
            offset += n
            results.append(FrameAnalysis(faces, frame.rejected, timings, frame.refused))
        return results
