"""Processing of one frame batch: the pure core (no AWS). The worker wraps it with storage.

decode -> detect, align, quality gate -> link faces into tracks -> embed each track's best few
faces -> fuse them into one embedding -> one 1:N decision per track -> best track per subject.

Privacy by construction: faces, crops and embeddings live only inside this function; what leaves
it is counts, timings and the matches. A track that matches nobody is dropped the moment its
score is known.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.matching.decision import decide
from chalicelib.matching.index import ExactIndex
from chalicelib.vision.decode import FrameDecodeError, decode_jpeg
from chalicelib.vision.pipeline import FacePipeline, GatedFace
from chalicelib.vision.track import Track, TrackerPolicy, link_tracks


@dataclass(frozen=True)
class FusionPolicy:
    enabled: bool = True  # False: every face decided on its own (the per-frame baseline)
    best_k: int = 3  # faces of a track embedded and fused, best quality first
    tracker: TrackerPolicy = TrackerPolicy()


@dataclass(frozen=True)
class Match:
    """The best track of one watchlist subject in one batch: what becomes an alert."""

    subject_id: str
    score: float
    frame_index: int
    captured_at: datetime
    box: tuple[float, float, float, float]
    crop: np.ndarray  # the best face with some context, BGR, for the officer's adjudication
    track_faces: int = 1  # faces of the person in this batch


@dataclass(frozen=True)
class _Seen:
    frame_index: int
    captured_at: datetime
    face: GatedFace
    context: np.ndarray


@dataclass
class BatchOutcome:
    frames_total: int = 0
    frames_processed: int = 0
    frames_skipped: Counter[str] = field(default_factory=Counter)
    faces_seen: int = 0
    faces_rejected: Counter[str] = field(default_factory=Counter)
    tracks: int = 0
    faces_embedded: int = 0
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
            "tracks": self.tracks,
            "faces_embedded": self.faces_embedded,
            "matches": len(self.matches),
        }


def process_frames(
    frames: Iterable[Frame],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    max_pixels: int,
    fusion: FusionPolicy = FusionPolicy(),
) -> BatchOutcome:
    """One alert per subject per batch, from the person's best track and best view."""
    out = BatchOutcome()
    per_frame: list[list[tuple[np.ndarray, _Seen]]] = []
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
        gated = pipeline.detect(image)
        out.frames_processed += 1
        out.timings_ms.update(gated.timings_ms)
        out.faces_rejected.update(gated.rejected)
        out.faces_seen += len(gated.faces) + sum(gated.rejected.values())
        per_frame.append([
            (f.detection.box, _Seen(frame.index, frame.captured_at, f,
                                    context_crop(image, f.detection.box)))
            for f in gated.faces
        ])
    if fusion.enabled:
        tracks = link_tracks(per_frame, fusion.tracker)
    else:
        tracks = [Track([0], [seen], [box]) for faces in per_frame for box, seen in faces]
    out.tracks = len(tracks)
    out.matches = _decide_tracks(tracks, pipeline, index, threshold, fusion, out)
    return out


def _decide_tracks(
    tracks: list[Track[_Seen]],
    pipeline: FacePipeline,
    index: ExactIndex,
    threshold: float,
    fusion: FusionPolicy,
    out: BatchOutcome,
) -> list[Match]:
    if not tracks:
        return []
    chosen = [sorted(t.items, key=lambda s: -s.face.quality)[: fusion.best_k] for t in tracks]
    crops = [s.face.crop for best in chosen for s in best]
    t0 = time.perf_counter()
    embeddings = pipeline.embed(crops)
    out.timings_ms["embed"] += (time.perf_counter() - t0) * 1000
    out.faces_embedded += len(crops)
    t0 = time.perf_counter()
    fused, offset = [], 0
    for best in chosen:
        mean = embeddings[offset : offset + len(best)].mean(axis=0)
        fused.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        offset += len(best)
    results: dict[str, Match] = {}
    for track, best, candidates in zip(tracks, chosen, index.search(np.stack(fused)), strict=True):
        top = decide(candidates, threshold)
        if top is None:
            continue  # nobody on the watchlist: forgotten here
        view = best[0]
        held = results.get(top.subject_id)
        if held is None or top.score > held.score:
            b = view.face.detection.box
            results[top.subject_id] = Match(
                top.subject_id, top.score, view.frame_index, view.captured_at,
                (float(b[0]), float(b[1]), float(b[2]), float(b[3])), view.context,
                len(track.items),
            )
    out.timings_ms["match"] += (time.perf_counter() - t0) * 1000
    return sorted(results.values(), key=lambda m: -m.score)


def context_crop(image: np.ndarray, box: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The face box grown by `margin` on each side, clipped to the frame: what an officer sees."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    h_img, w_img = image.shape[:2]
    xa, ya = max(0, int(x1 - margin * w)), max(0, int(y1 - margin * h))
    xb, yb = min(w_img, int(x2 + margin * w)), min(h_img, int(y2 + margin * h))
    return image[ya:yb, xa:xb].copy()
