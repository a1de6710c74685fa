"""Tracks across a camera's batches (ingest/continuity.py, ingest/process.py), with the in-process
fake of the vision stage: one passing, one decision, whatever the batches and their order."""

from __future__ import annotations

import json

import numpy as np

from chalicelib.ingest.continuity import (
    STATE_KEYS,
    TRACK_KEYS,
    TRACK_TTL_S,
    CameraTracks,
    CarriedTrack,
    merge,
)
from chalicelib.ingest.process import FusionPolicy, process_frames
from tests.unit.test_index_and_process import (
    ALICE,
    BOB,
    INDEX,
    STRANGER,
    FakePipeline,
    _frame,
)

NOW = 1_800_000_000.0


def _walk(value_from: int, frames: int, embedding: np.ndarray = STRANGER) -> dict:
    """A person walking right 20 px a frame, one face per frame value."""
    return {v: [([10 + 20 * v, 10, 40 + 20 * v, 40], embedding)]
            for v in range(value_from, value_from + frames)}


def _batches(pipe: FakePipeline, order: list[int], per_batch: int = 2, carry: bool = True,
             now: float = NOW, fps: float = 5.0) -> list:
    outs, state = [], None
    n = len(pipe.faces)
    starts = list(range(0, n, per_batch))
    for b in order:
        frames = [_frame(i, i, fps) for i in range(starts[b], min(n, starts[b] + per_batch))]
        out = process_frames(frames, pipe, INDEX, 0.5, 100_000, FusionPolicy(), state, now)  # type: ignore[arg-type]
        state = out.carry if carry else None
        outs.append(out)
    return outs


def test_one_passing_over_three_batches_is_decided_once() -> None:
    pipe = FakePipeline(_walk(0, 6))
    outs = _batches(pipe, [0, 1, 2])
    assert sum(o.passings for o in outs) == 1 and sum(o.continued for o in outs) == 2
    assert sum(o.decisions for o in outs) == 1
    assert sum(o.faces_embedded for o in outs) == 2  # best_k of the first batch only
    alone = _batches(FakePipeline(_walk(0, 6)), [0, 1, 2], carry=False)
    assert sum(o.passings for o in alone) == 3 and sum(o.decisions for o in alone) == 3


def test_batches_out_of_order_still_make_one_passing() -> None:
    outs = _batches(FakePipeline(_walk(0, 6)), [2, 0, 1])
    assert sum(o.passings for o in outs) == 1
    assert sum(o.decisions for o in outs) == 1


def test_a_matched_passing_is_alerted_once_and_kept_fresh() -> None:
    outs = _batches(FakePipeline(_walk(0, 6, ALICE)), [0, 1, 2])
    assert [[m.subject_id for m in o.matches] for o in outs] == [["alice"], [], []]
    assert outs[2].carry.tracks[0].subject_id == "alice"
    # Lingering in view for 24 s (a frame a second): one decision, and the sighting that
    # holds off a second alert is refreshed every 15 s, not in every batch.
    slow = {v: [([10 + 2 * v, 10, 40 + 2 * v, 40], ALICE)] for v in range(25)}
    outs = _batches(FakePipeline(slow), list(range(5)), per_batch=5, fps=1.0)
    assert [len(o.matches) for o in outs] == [1, 0, 0, 0, 0]
    assert [[s for s, _ in o.sustained] for o in outs] == [[], [], [], ["alice"], []]


def test_a_clearly_better_view_is_embedded_again_within_the_budget() -> None:
    faces = _walk(0, 6)
    # A passer-by far away (poor views) in the first batch, close and clear in the second.
    qualities = {0: [0.2], 1: [0.2], 2: [0.21], 3: [0.22], 4: [0.6], 5: [0.6]}
    outs = _batches(FakePipeline(faces, qualities=qualities), [0, 1, 2])
    assert [o.decisions for o in outs] == [1, 0, 1]  # 0.22 is not clearly better than 0.2
    assert [o.faces_embedded for o in outs] == [2, 0, 1]


def test_what_is_carried_about_a_passer_by() -> None:
    out = _batches(FakePipeline(_walk(0, 4)), [0])[0]
    doc = json.loads(out.carry.to_json())
    assert set(doc) <= STATE_KEYS
    (track,) = doc["tracks"]
    assert set(track) <= TRACK_KEYS
    assert track["subject_id"] is None and track["decisions"] == 1
    # Geometry, times, quality and counts: numbers only, nothing that could re-identify.
    assert all(isinstance(v, (int, float)) for k, v in track.items()
               if k not in ("tid", "subject_id", "velocity", "first_box", "last_box"))
    # A minute after the batch that last saw it, it is gone.
    assert out.carry.pruned(NOW + TRACK_TTL_S - 1).tracks
    assert not out.carry.pruned(NOW + TRACK_TTL_S + 1).tracks
    later = _batches(FakePipeline(_walk(0, 4)), [0], now=NOW + TRACK_TTL_S + 1)
    assert later[0].carry.pruned(NOW + 2 * TRACK_TTL_S + 2).tracks == []


def _find(state: CameraTracks, tid: str) -> CarriedTrack | None:
    return next((t for t in state.tracks if t.tid == tid), None)


def test_two_batches_written_at_once_merge() -> None:
    base = CarriedTrack("t1", 0.0, 1.0, [0, 0, 4, 4], [4, 0, 8, 4], [4.0, 0.0], NOW,
                        decisions=1, embedded=2, best_q=0.3)
    a = CameraTracks([CarriedTrack(**{**base.__dict__, "last_t": 2.0, "last_box": [8, 0, 12, 4]})],
                     2.0)
    b = CameraTracks([CarriedTrack(**{**base.__dict__, "best_q": 0.5, "embedded": 3,
                                      "decisions": 2, "subject_id": "alice"}),
                      CarriedTrack("t2", 1.5, 1.5, [50, 0, 54, 4], [50, 0, 54, 4], None, NOW)],
                     1.5)
    m = merge(a, b)
    t1 = _find(m, "t1")
    assert t1 is not None and t1.last_t == 2.0 and t1.best_q == 0.5 and t1.embedded == 3
    assert t1.subject_id == "alice" and _find(m, "t2") is not None
    assert m.last_key_t == 2.0


def test_someone_entering_where_a_passer_by_left_is_a_new_passing() -> None:
    # A walks out of the left edge; B steps in at that edge, a little lower, just after: close
    # enough to A's predicted place to be taken for A, whose face should be outside by then.
    faces = {v: [([60 - 40 * v, 60, 120 - 40 * v, 120], STRANGER)] for v in range(3)}
    faces.update({v: [([40 * (v - 3), 80, 60 + 40 * (v - 3), 140], ALICE)] for v in range(3, 6)})
    outs = _batches(FakePipeline(faces), [0, 1], per_batch=3)
    assert [o.passings for o in outs] == [1, 1]
    assert [m.subject_id for o in outs for m in o.matches] == ["alice"]


def test_region_searches_of_people_side_by_side_count_each_face_once() -> None:
    # Two walk together; between full-frame detections each one's region holds both faces.
    faces = {v: [([10 + 20 * v, 10, 40 + 20 * v, 40], ALICE),
                 ([40 + 20 * v, 10, 70 + 20 * v, 40], BOB)] for v in range(6)}
    faces[4] = faces[4][1:]  # Alice is missed once: Bob's face is not hers
    pipe = FakePipeline(faces)
    (out,) = _batches(pipe, [0], per_batch=6)
    assert pipe.region_searches > 0
    assert out.passings == 2
    assert {m.subject_id: m.track_faces for m in out.matches} == {"alice": 5, "bob": 6}
    # Each face once (the fake's gate also tallies one refused face per full-frame detection).
    assert out.faces_seen == 11 + out.keyframes
