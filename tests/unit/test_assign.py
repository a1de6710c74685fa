"""The faces of one frame to tracks (ingest/assign.py)."""

from __future__ import annotations

import numpy as np

from chalicelib.ingest.assign import assign_regions, assign_whole
from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import Track, Tracker, TrackerPolicy
from chalicelib.vision.types import Detection

POLICY = TrackerPolicy()


def _face(x: float, y: float = 0.0) -> GatedFace:
    box = np.array([x, y, x + 40, y + 40], np.float32)
    return GatedFace(Detection(box, 0.9, np.zeros((5, 2), np.float32)),
                     np.zeros((112, 112, 3), np.uint8), 0.5)


def _walking(x: float) -> Track[str]:
    """A face walking right 20 px a frame at 5 fps, last seen at t=0.2."""
    tr: Track[str] = Track()
    tr.observe(0.0, np.array([x - 20, 0, x + 20, 40], np.float32), "before")
    tr.observe(0.2, np.array([x, 0, x + 40, 40], np.float32), "before")
    return tr


def _x(f: GatedFace) -> str:
    return f"x{int(f.detection.box[0])}"


def test_a_face_found_by_two_regions_goes_to_the_closer_track() -> None:
    a, b = _walking(0), _walking(45)
    # Both regions find the face at x=20 (where a should be) and b's face at x=66 (close to b).
    found = [[_face(20), _face(66)], [_face(20.5), _face(66)]]
    assign_regions([a, b], 0.4, found, _x, POLICY)
    assert a.items[-1] == "x20" and b.items[-1] == "x66"
    assert len(a.items) == len(b.items) == 3


def test_a_region_face_too_far_continues_nothing() -> None:
    a = _walking(0)
    assign_regions([a], 0.4, [[_face(600, 300)]], _x, POLICY)
    assert a.items == ["before", "before"]


def test_missed_in_its_own_region_a_track_does_not_take_its_neighbours_face() -> None:
    # Side by side: a's face is missed this frame; the face both regions find is b's.
    a, b = _walking(0), _walking(45)
    assign_regions([a, b], 0.4, [[_face(65)], [_face(65)]], _x, POLICY)
    assert a.items == ["before", "before"] and b.items[-1] == "x65"


def test_whole_frame_with_fusion_links_or_starts_tracks() -> None:
    tracker: Tracker[str] = Tracker(POLICY, [_walking(0)])
    assign_whole(tracker, 0.4, [_face(20), _face(400, 300)], _x, fusion=True)
    assert sorted(tr.items[-1] for tr in tracker.live) == ["x20", "x400"]
    assert len(tracker.live) == 2 and not tracker.done


def test_whole_frame_without_fusion_every_face_is_its_own_ended_track() -> None:
    tracker: Tracker[str] = Tracker(POLICY)
    assign_whole(tracker, 0.4, [_face(20), _face(24)], _x, fusion=False)
    assert not tracker.live and [tr.items for tr in tracker.done] == [["x20"], ["x24"]]
