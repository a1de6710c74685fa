"""Where the detector looks (ingest/keyframes.py): key frames, regions, each face counted once."""

from __future__ import annotations

import numpy as np

from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.keyframes import (
    detect_regions,
    detect_whole,
    is_keyframe,
    wanting_view,
    wants_view,
)
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.policy import FusionPolicy
from chalicelib.vision.pipeline import GatedFace, GatedFrame
from chalicelib.vision.track import Track
from chalicelib.vision.types import Detection

FUSION = FusionPolicy()
SHAPE = (720, 1280, 3)


def _summary(**kw: object) -> CarriedTrack:
    return CarriedTrack("t", 0.0, 1.0, [0, 0, 40, 40], [0, 0, 40, 40], None, 0.0, **kw)  # type: ignore[arg-type]


def _track(x: float, last_t: float = 1.0, s: float = 40) -> Track[int]:
    tr: Track[int] = Track()
    tr.observe(last_t, np.array([x, 0, x + s, s], np.float32), 0)
    return tr


def test_a_track_wants_a_view_until_decided_well_enough() -> None:
    assert wants_view(None, FUSION)  # new in this batch
    assert wants_view(_summary(), FUSION)  # carried, not decided yet
    assert wants_view(_summary(decisions=1, embedded=2, best_q=0.5), FUSION)
    assert not wants_view(_summary(decisions=1, embedded=2, best_q=0.9), FUSION)  # no better
    assert not wants_view(_summary(decisions=1, embedded=4, best_q=0.1), FUSION)  # budget spent
    assert not wants_view(_summary(decisions=1, embedded=1, subject_id="alice"), FUSION)


def test_only_tracks_in_reach_are_searched() -> None:
    near, gone = _track(0, last_t=1.0), _track(100, last_t=0.0)
    decided = _track(200, last_t=1.0)
    summaries = {decided.tid: _summary(decisions=1, embedded=1, subject_id="bob")}
    assert wanting_view([near, gone, decided], 1.5, summaries, FUSION) == [near]


def test_key_frames_first_then_every_interval() -> None:
    assert is_keyframe(10.0, None, [], SHAPE, FUSION)  # the camera's first frame
    assert not is_keyframe(10.2, 10.0, [], SHAPE, FUSION)
    assert not is_keyframe(10.598, 10.0, [], SHAPE, FUSION)
    assert is_keyframe(10.6, 10.0, [], SHAPE, FUSION)
    assert is_keyframe(9.8, 10.0, [], SHAPE, FUSION)  # before the last one: a late batch
    assert is_keyframe(10.2, 10.0, [], SHAPE, FusionPolicy(enabled=False))
    assert is_keyframe(10.2, 10.0, [], SHAPE, FusionPolicy(key_interval_s=0))


def test_regions_worth_more_than_the_share_mean_the_whole_frame() -> None:
    # A 200 px face is searched in a 600 px square: 360,000 of 921,600 px (39 %).
    big = [_track(0, s=200)]
    assert not is_keyframe(10.2, 10.0, big, SHAPE, FUSION)
    assert is_keyframe(10.2, 10.0, big * 2, SHAPE, FUSION)  # 78 % > 50 %


def _face(x: float) -> GatedFace:
    box = np.array([x, 0, x + 40, 40], np.float32)
    return GatedFace(Detection(box, 0.9, np.zeros((5, 2), np.float32)),
                     np.zeros((112, 112, 3), np.uint8), 0.5)


class _Pipeline:
    """Every detection finds the same faces, and one face refused as too small."""

    def __init__(self, faces: list[GatedFace]) -> None:
        self.faces, self.near = faces, 0

    def _gated(self) -> GatedFrame:
        refused = [Detection(np.array([500, 0, 505, 5], np.float32), 0.9, np.zeros((5, 2)))]
        return GatedFrame(list(self.faces), {"too_small": 1}, {"detect": 1.0}, refused)

    def detect(self, image: np.ndarray, steady: bool = True, stream: bool = False) -> GatedFrame:
        return self._gated()

    def detect_near(self, image: np.ndarray, box: np.ndarray) -> GatedFrame:
        self.near += 1
        return self._gated()


def test_overlapping_regions_count_each_face_once() -> None:
    pipe = _Pipeline([_face(0), _face(60)])
    out = BatchOutcome()
    found = detect_regions(pipe, np.zeros(SHAPE, np.uint8), [_track(0), _track(60)], 1.2, out)  # type: ignore[arg-type]
    assert pipe.near == 2 and [len(f) for f in found] == [2, 2]  # both regions see both
    assert out.faces_seen == 3  # two faces and the refused one, once each
    assert out.faces_rejected == {"too_small": 1}
    assert out.keyframes == 0 and out.timings_ms["detect"] == 2.0


def test_a_whole_frame_counts_a_key_frame_and_every_face() -> None:
    out = BatchOutcome()
    faces = detect_whole(_Pipeline([_face(0)]), np.zeros(SHAPE, np.uint8), out)  # type: ignore[arg-type]
    assert len(faces) == 1 and out.keyframes == 1
    assert out.faces_seen == 2 and out.faces_rejected == {"too_small": 1}
