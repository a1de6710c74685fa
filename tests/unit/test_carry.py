"""Tracks carried across a camera's batches (ingest/carry.py), without the vision stage."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from chalicelib.ingest.carry import CameraCarry, span_cost, summarise
from chalicelib.ingest.continuity import TRACK_TTL_S, CameraTracks, CarriedTrack
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.views import View
from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import Track, TrackerPolicy
from chalicelib.vision.types import Detection

NOW = 1_800_000_000.0
POLICY = TrackerPolicy()


def _carried(tid: str, first_t: float, last_t: float, x0: float, x1: float,
             **kw: object) -> CarriedTrack:
    return CarriedTrack(tid, first_t, last_t, [x0, 0, x0 + 40, 40], [x1, 0, x1 + 40, 40],
                        [(x1 - x0) / (last_t - first_t), 0.0], NOW, **kw)  # type: ignore[arg-type]


def _view(t: float) -> View:
    face = GatedFace(Detection(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32)),
                     np.zeros((112, 112, 3), np.uint8), 0.5)
    return View(0, datetime.fromtimestamp(t, UTC), face, 1.0)


def _new(ts: list[float], xs: list[float]) -> Track[View]:
    tr: Track[View] = Track()
    for t, x in zip(ts, xs, strict=True):
        tr.observe(t, np.array([x, 0, x + 40, 40], np.float32), _view(t))
    return tr


def test_resume_drops_what_expired_and_carries_nothing_without_fusion() -> None:
    state = CameraTracks([_carried("old", 0, 1, 0, 20), _carried("t1", 1, 2, 0, 20)], 2.0)
    state.tracks[0].seen_at = NOW - TRACK_TTL_S - 1
    camera = CameraCarry.resume(state, NOW, enabled=True)
    assert list(camera.summaries) == ["t1"] and camera.state.last_key_t == 2.0
    assert [tr.tid for tr in camera.open_tracks()] == ["t1"]
    assert all(tr.carried and not tr.items for tr in camera.open_tracks())
    off = CameraCarry.resume(state, NOW, enabled=False)
    assert off.summaries == {} and off.open_tracks() == []
    assert off.carried_out().tracks == [] and off.carried_out().last_key_t is None


def test_key_frames_keep_the_latest_whatever_the_order() -> None:
    camera = CameraCarry.resume(None, NOW, enabled=True)
    for t in (5.0, 3.0, 6.0, 4.0):
        camera.key_frame(t)
    assert camera.carried_out().last_key_t == 6.0


def test_a_late_batch_takes_the_id_of_the_track_it_begins() -> None:
    # Carried: a walker seen from t=10 at x=100, 100 px/s. This late batch saw them at 9.6-9.8.
    camera = CameraCarry.resume(CameraTracks([_carried("walker", 10, 11, 100, 200)]), NOW, True)
    before, stranger = _new([9.6, 9.8], [60, 80]), _new([9.6, 9.8], [600, 600])
    camera.link_backwards([before, stranger], POLICY)
    assert before.tid == "walker" and before.carried
    assert stranger.tid != "walker" and not stranger.carried


def test_a_carried_id_goes_to_one_track_only() -> None:
    camera = CameraCarry.resume(CameraTracks([_carried("walker", 10, 11, 100, 200)]), NOW, True)
    a, b = _new([9.6, 9.8], [60, 80]), _new([9.6, 9.8], [62, 82])
    camera.link_backwards([a, b], POLICY)
    assert [a.carried, b.carried].count(True) == 1


def test_a_middle_part_fits_inside_the_carried_gap() -> None:
    s = _carried("walker", 10, 12, 100, 300)  # 100 px/s
    assert span_cost(s, _new([11.0, 11.2], [200, 220]), POLICY) == 0.0
    assert span_cost(s, _new([11.0, 11.2], [400, 420]), POLICY) is None  # not where they were
    assert span_cost(s, _new([13.0], [400]), POLICY) is None  # after it: not backwards


def test_summary_extends_backwards_and_keeps_the_motion() -> None:
    held = _carried("walker", 10, 11, 100, 200, decisions=1)
    s = summarise(_new([9.8], [80]), held, NOW + 5)
    assert (s.first_t, s.first_box[0], s.last_t, s.last_box[0]) == (9.8, 80.0, 11, 200)
    assert s.velocity == [100.0, 0.0] and s.decisions == 1 and s.seen_at == NOW + 5


def test_after_batch_counts_passings_and_sustains_a_match_every_15_s() -> None:
    camera = CameraCarry.resume(
        CameraTracks([_carried("m", 0, 1, 0, 20, subject_id="alice", sustained_t=1.0)]), NOW, True)
    out = BatchOutcome()
    (carried,) = camera.open_tracks()
    carried.observe(10.0, np.array([0, 0, 40, 40], np.float32), _view(10.0))
    camera.after_batch(carried, NOW, out)
    assert out.sustained == [] and out.continued == 1  # 9 s since: not yet
    carried.observe(16.0, np.array([0, 0, 40, 40], np.float32), _view(16.0))
    camera.after_batch(carried, NOW, out)
    assert [s for s, _ in out.sustained] == ["alice"] and camera.summaries["m"].sustained_t == 16
    camera.after_batch(_new([16.0], [500]), NOW, out)
    assert out.passings == 1 and len(camera.carried_out().tracks) == 2
