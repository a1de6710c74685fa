"""The faces of one frame to tracks, one face per track and one track per face (the rule itself:
vision/track.one_to_one). On a key frame every face links to a live track or starts one; between
key frames a face found around a track can only continue a track."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import (
    SAME_FACE_IOU,
    Track,
    Tracker,
    TrackerPolicy,
    iou,
    link_cost,
    one_to_one,
)

V = TypeVar("V")


def assign_whole(tracker: Tracker[V], t: float, faces: list[GatedFace],
                 view_of: Callable[[GatedFace], V], fusion: bool) -> None:
    """The faces of a full-frame detection at time t. Without fusion every face is a track of
    its own, ended at once (the per-frame baseline: each face decided alone)."""
    views = [(f.detection.box, view_of(f)) for f in faces]
    if fusion:
        tracker.step(t, views)
        return
    for box, v in views:
        single: Track[V] = Track()
        single.observe(t, box, v)
        tracker.done.append(single)


def assign_regions(tracks: list[Track[V]], t: float, found: list[list[GatedFace]],
                   view_of: Callable[[GatedFace], V], policy: TrackerPolicy) -> None:
    """found[i]: the faces found around tracks[i] at time t. A face found by two regions is
    one face, and goes to the closer track."""
    faces = [(ti, f) for ti, fs in enumerate(found) for f in fs]
    pairs = [(c, ti, fi) for fi, (ti, f) in enumerate(faces)
             if (c := link_cost(tracks[ti], t, f.detection.box, policy)) is not None]
    boxes = [f.detection.box for _, f in faces]
    for ti, fi in one_to_one(pairs, lambda a, b: iou(boxes[a], boxes[b]) >= SAME_FACE_IOU):
        face = faces[fi][1]
        tracks[ti].observe(t, face.detection.box, view_of(face))
