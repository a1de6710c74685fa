"""Processing of one frame batch: the pure core (no AWS). The worker wraps it with storage.

Privacy by construction: a face's crop and embedding live only inside this function; the only
things that leave it are counts, timings and the matches. Faces that match nobody are dropped the
moment their score is known.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.matching.index import ExactIndex
from chalicelib.vision.decode import FrameDecodeError, decode_jpeg
from chalicelib.vision.pipeline import FacePipeline


@dataclass(frozen=True)
class Match:
    """The best face of one watchlist subject in one batch: what becomes an alert."""

    subject_id: str
    score: float
    frame_index: int
    captured_at: datetime
    box: tuple[float, float, float, float]
    crop: np.ndarray  # the face with some context, BGR, kept for the officer's adjudication


@dataclass
class BatchOutcome:
    frames_total: int = 0
    frames_processed: int = 0
    frames_skipped: Counter[str] = field(default_factory=Counter)
    faces_seen: int = 0
    faces_rejected: Counter[str] = field(default_factory=Counter)
    matches: list[Match] = field(default_factory=list)
    timings_ms: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, object]:
        """Counts only: safe to log and to put in metrics."""
        return {
            "frames_total": self.frames_total,
            "frames_processed": self.frames_processed,
            "frames_skipped": dict(self.frames_skipped),
            "faces_seen": self.faces_seen,
            "faces_rejected": dict(self.faces_rejected),
            "matches": len(self.matches),
        }


def process_frames(
    frames: Iterable[Frame],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    max_pixels: int,
) -> BatchOutcome:
    """Decode, analyse and match every frame; keep the best face per matched subject.

    One alert per subject per batch: a person walking past a camera is in many frames of a batch,
    and the officer needs one alert with the clearest view, not one per frame.
    """
    out = BatchOutcome()
    best: dict[str, Match] = {}
    for frame in frames:
        out.frames_total += 1
        if frame.data is None:
            out.frames_skipped[frame.problem or "unreadable"] += 1
            continue
        t0 = time.perf_counter()
        try:
            image = decode_jpeg(frame.data, max_pixels)
        except FrameDecodeError as exc:
            out.frames_skipped[exc.reason] += 1
            continue
        out.timings_ms["decode"] += (time.perf_counter() - t0) * 1000
        analysis = pipeline.analyze(image)
        out.frames_processed += 1
        out.timings_ms.update(analysis.timings_ms)
        out.faces_rejected.update(analysis.rejected)
        out.faces_seen += len(analysis.faces) + sum(analysis.rejected.values())
        if not analysis.faces:
            continue
        t0 = time.perf_counter()
        embeddings = np.stack([f.embedding for f in analysis.faces])
        for face, candidates in zip(analysis.faces, index.search(embeddings, k=1), strict=True):
            if not candidates or candidates[0].score < threshold:
                continue
            top = candidates[0]
            held = best.get(top.subject_id)
            if held is None or top.score > held.score:
                b = face.detection.box
                best[top.subject_id] = Match(
                    top.subject_id,
                    top.score,
                    frame.index,
                    frame.captured_at,
                    (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    context_crop(image, b),
                )
        out.timings_ms["match"] += (time.perf_counter() - t0) * 1000
    out.matches = sorted(best.values(), key=lambda m: -m.score)
    return out


def context_crop(image: np.ndarray, box: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The face box grown by `margin` on each side, clipped to the frame: what an officer sees."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    h_img, w_img = image.shape[:2]
    xa, ya = max(0, int(x1 - margin * w)), max(0, int(y1 - margin * h))
    xb, yb = min(w_img, int(x2 + margin * w)), min(h_img, int(y2 + margin * h))
    return image[ya:yb, xa:xb].copy()
