"""Where the detector looks in a frame. New faces are found by full-frame detection, at most
`key_interval_s` apart in capture time (key frames); between key frames it looks only around
the tracks that still want a view, unless those regions add up to most of the frame. Each face
is counted once, however many regions found it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.policy import FusionPolicy
from chalicelib.vision.pipeline import FacePipeline, GatedFace, GatedFrame
from chalicelib.vision.track import SAME_FACE_IOU, Track, iou, size


def wants_view(s: CarriedTrack | None, fusion: FusionPolicy) -> bool:
    """Does looking for this track's face between full-frame detections buy anything?"""
    if s is None or s.decisions == 0:
        return True  # not decided yet: its best views are wanted
    if s.matched or s.embedded >= fusion.max_embedded:
        return False
    return s.best_q * fusion.better_view <= 1.0  # a clearly better view is still possible


def wanting_view(live: Iterable[Track[Any]], t: float, summaries: dict[str, CarriedTrack],
                 fusion: FusionPolicy) -> list[Track[Any]]:
    """The live tracks, still in reach at time t, whose face is worth a region search."""
    return [tr for tr in live if t - tr.last_t <= fusion.tracker.max_gap_s
            and wants_view(summaries.get(tr.tid), fusion)]


def is_keyframe(t: float, last_key_t: float | None, wanting: list[Track[Any]],
                shape: tuple[int, ...], fusion: FusionPolicy) -> bool:
    """Detect the whole frame at time t? Yes without fusion, for the camera's first frame, once
    `key_interval_s` has passed (or t lies before the last key frame: a late batch), and when the
    regions to search would cost more than `max_region_share` of the frame."""
    region_area = sum((3 * size(tr.last_box)) ** 2 for tr in wanting)
    return (not fusion.enabled or last_key_t is None
            or not 0 <= t - last_key_t < fusion.key_interval_s - 1e-3
            or region_area > fusion.max_region_share * shape[0] * shape[1])


def detect_whole(pipeline: FacePipeline, image: np.ndarray, out: BatchOutcome) -> list[GatedFace]:
    gated = pipeline.detect(image, steady=False, stream=True)
    out.keyframes += 1
    _account(out, gated)
    return gated.faces


def detect_regions(pipeline: FacePipeline, image: np.ndarray, tracks: list[Track[Any]],
                   t: float, out: BatchOutcome) -> list[list[GatedFace]]:
    """The faces found around where each track's face should be at time t, per track."""
    counted: list[np.ndarray] = []  # regions overlap: a face is counted once
    found = []
    for tr in tracks:
        gated = pipeline.detect_near(image, tr.predict(t))
        _account(out, gated, counted)
        found.append(gated.faces)
    return found


def _account(out: BatchOutcome, gated: GatedFrame,
             counted: list[np.ndarray] | None = None) -> None:
    """Timings and counts of one detection; `counted`: boxes of this frame counted already
    (region searches of nearby tracks see the same faces)."""
    out.timings_ms.update(gated.timings_ms)
    if counted is None:
        out.faces_rejected.update(gated.rejected)
        out.faces_seen += len(gated.faces) + sum(gated.rejected.values())
        return

    def new(box: np.ndarray) -> bool:
        fresh = all(iou(box, b) < SAME_FACE_IOU for b in counted)
        if fresh:
            counted.append(box)
        return fresh

    out.faces_seen += sum(new(f.detection.box) for f in gated.faces)
    refused_new = [new(d.box) for d in gated.refused]
    out.faces_seen += sum(refused_new)
    if all(refused_new):  # reasons are tallied per region: counted once, with their faces
        out.faces_rejected.update(gated.rejected)
