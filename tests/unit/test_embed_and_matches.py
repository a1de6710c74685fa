"""Embedding and deciding a batch's tracks (ingest/embed.py, ingest/matches.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.embed import Plan, embed_views, fuse
from chalicelib.ingest.matches import context_crop, decide_plans
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.views import View
from chalicelib.matching.index import ExactIndex
from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import Track
from chalicelib.vision.types import Detection

T0 = datetime(2026, 11, 26, tzinfo=UTC)
ALICE, BOB = np.array([1, 0, 0], np.float32), np.array([0, 1, 0], np.float32)
INDEX = ExactIndex(["alice", "bob"], np.stack([ALICE, BOB]), "m")


def _view(frame: int, q: float, x: float = 30) -> View:
    det = Detection(np.array([x, 20, x + 20, 40], np.float32), 0.9,
                    np.zeros((5, 2), np.float32))
    work = np.full((100, 100, 3), frame, np.uint8)
    return View(frame, T0 + timedelta(seconds=frame / 5), GatedFace(det, work[:1], q), 1.0,
                work, (10, 10))


def _plan(*views: View, summary: CarriedTrack | None = None) -> Plan:
    tr: Track[View] = Track()
    for v in views:
        tr.observe(v.frame_index / 5, v.face.detection.box, v)
    return Plan(tr, summary or CarriedTrack(tr.tid, 0, 1, [], [], None, 0.0), list(views))


def test_each_plan_is_the_normalised_mean_of_its_own_views() -> None:
    plans = [_plan(_view(0, 0.5), _view(1, 0.6)), _plan(_view(2, 0.5))]
    emb = np.stack([ALICE, BOB, np.array([0, 0, 2], np.float32)])
    fused = fuse(plans, emb)
    assert np.allclose(fused, [[2 ** -0.5, 2 ** -0.5, 0], [0, 0, 1]])


class _Pipeline:
    def __init__(self) -> None:
        self.steadied: list[tuple[int, list[float]]] = []

    def steadied_crop(self, work: np.ndarray, det: Detection, crop: np.ndarray,
                      scale: float | None = None) -> np.ndarray:
        self.steadied.append((int(work[0, 0, 0]), det.box.tolist()))
        return crop

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.stack([ALICE for _ in crops])


def test_views_are_steadied_in_their_own_coordinates_and_counted() -> None:
    pipe, out = _Pipeline(), BatchOutcome()
    embeddings = embed_views([_plan(_view(3, 0.5)), _plan(_view(4, 0.5), _view(5, 0.5))],
                             pipe, out)  # type: ignore[arg-type]
    assert embeddings.shape == (3, 3) and out.faces_embedded == 3
    assert pipe.steadied == [(3, [20, 10, 40, 30]), (4, [20, 10, 40, 30]), (5, [20, 10, 40, 30])]
    assert {"mirror", "embed"} <= set(out.timings_ms)


def test_the_best_track_per_subject_is_the_match_and_flags_are_kept() -> None:
    weak = _plan(_view(1, 0.4))
    strong = _plan(_view(2, 0.7), _view(3, 0.6))
    stranger = _plan(_view(4, 0.9))
    fused = np.stack([ALICE * 0.6 + BOB * 0.8, ALICE, np.array([0, 0, 1], np.float32)])
    out = BatchOutcome()
    matches = decide_plans([weak, strong, stranger], fused, INDEX, 0.5, out)
    # Each from its track's best view (frame 2 of the strong track, frame 1 of the weak one).
    assert [(m.subject_id, m.frame_index, m.track_faces) for m in matches] == [
        ("alice", 2, 2), ("bob", 1, 1)]
    assert matches[0].box == (30.0, 20.0, 50.0, 40.0)
    assert out.decisions == 3
    s = strong.summary
    assert (s.embedded, s.decisions, s.best_q, s.subject_id) == (2, 1, 0.7, "alice")
    assert s.sustained_t == (T0 + timedelta(seconds=3 / 5)).timestamp()
    assert stranger.summary.subject_id is None and stranger.summary.decisions == 1


def test_a_second_track_of_a_subject_scoring_lower_does_not_replace_the_first() -> None:
    first, second = _plan(_view(1, 0.5)), _plan(_view(2, 0.5))
    fused = np.stack([ALICE, ALICE * 0.8 + BOB * 0.6])
    (m,) = decide_plans([first, second], fused, INDEX, 0.5, BatchOutcome())
    assert m.frame_index == 1  # the first track's
    assert second.summary.subject_id == "alice"  # both passings carry the match on


def test_context_crop_grows_the_box_and_stays_inside_the_frame() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    assert context_crop(image, np.array([40, 40, 60, 60], np.float32)).shape == (44, 44, 3)
    assert context_crop(image, np.array([0, 90, 10, 100], np.float32)).shape == (16, 16, 3)
