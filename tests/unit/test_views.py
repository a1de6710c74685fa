"""A track's views (ingest/views.py): what is kept of a face, and which views are embedded."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.policy import FusionPolicy
from chalicelib.ingest.views import View, keep_best, to_embed
from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import Track
from chalicelib.vision.types import Detection

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def _face(x: float, y: float, q: float = 0.5, s: float = 20) -> GatedFace:
    landmarks = np.full((5, 2), [x + s / 2, y + s / 2], np.float32)
    return GatedFace(Detection(np.array([x, y, x + s, y + s], np.float32), 0.9, landmarks),
                     np.zeros((112, 112, 3), np.uint8), q)


def _view(q: float) -> View:
    return View(0, T0, _face(0, 0, q), 1.0, np.zeros((8, 8, 3), np.uint8))


def test_a_view_keeps_the_frame_around_the_face_in_its_own_coordinates() -> None:
    image = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    v = View.of(Frame(7, "7.jpg", T0, b""), image, 0.5, _face(100, 80))
    assert (v.frame_index, v.captured_at, v.scale) == (7, T0, 0.5)
    assert v.origin == (86, 66)  # the face's centre (110, 90) less 1.1 face widths + 2
    local = v.local()
    assert local.box.tolist() == [14, 14, 34, 34]
    assert local.landmarks[0].tolist() == [24, 24]
    x1, y1 = int(local.box[0]), int(local.box[1])
    assert np.array_equal(v.pixels()[y1, x1], image[80, 100])  # the same pixel
    before = image[66, 86].copy()
    v.pixels()[0, 0] = 255 - before
    assert np.array_equal(image[66, 86], before)  # a copy: the frame itself is let go


def test_a_face_beyond_the_frame_keeps_no_pixels() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    assert View.of(Frame(0, "0.jpg", T0, b""), image, 1.0, _face(310, 100)).work is None


def test_only_the_k_best_views_of_tracks_seen_now_keep_their_pixels() -> None:
    seen_now: Track[View] = Track()
    for t, q in ((0.0, 0.3), (0.2, 0.9), (0.4, 0.5), (0.6, 0.7)):
        seen_now.observe(t, np.zeros(4, np.float32), _view(q))
    seen_before: Track[View] = Track()
    seen_before.observe(0.2, np.zeros(4, np.float32), _view(0.1))
    seen_before.observe(0.4, np.zeros(4, np.float32), _view(0.2))
    keep_best([seen_now, seen_before], 0.6, 2)
    assert [v.work is not None for v in seen_now.items] == [False, True, False, True]
    assert all(v.work is not None for v in seen_before.items)  # not looked at this frame


def _track(*qualities: float) -> Track[View]:
    tr: Track[View] = Track()
    for i, q in enumerate(qualities):
        tr.observe(i / 5, np.zeros(4, np.float32), _view(q))
    return tr


def _summary(**kw: object) -> CarriedTrack:
    return CarriedTrack("t", 0.0, 1.0, [], [], None, 0.0, **kw)  # type: ignore[arg-type]


def test_first_decision_on_the_best_k_within_the_budget() -> None:
    tr, fusion = _track(0.3, 0.9, 0.5), FusionPolicy(best_k=2, max_embedded=4)
    assert [v.face.quality for v in to_embed(tr, _summary(), fusion)] == [0.9, 0.5]
    assert len(to_embed(tr, _summary(embedded=3), fusion)) == 1  # one left in the budget
    assert to_embed(tr, _summary(embedded=4), fusion) == []
    tr.items[1].work = None  # dropped: not a candidate any more
    assert [v.face.quality for v in to_embed(tr, _summary(), fusion)] == [0.5, 0.3]


def test_later_only_a_clearly_better_view_and_never_after_a_match() -> None:
    fusion = FusionPolicy(better_view=1.25)
    decided = _summary(decisions=1, embedded=2, best_q=0.6)
    assert to_embed(_track(0.7), decided, fusion) == []  # 0.7 < 0.75
    assert [v.face.quality for v in to_embed(_track(0.4, 0.8), decided, fusion)] == [0.8]
    assert to_embed(_track(0.9), _summary(decisions=1, embedded=1, subject_id="a"), fusion) == []


def test_without_fusion_the_best_face_alone() -> None:
    assert [v.face.quality for v in to_embed(_track(0.2, 0.6), _summary(),
                                             FusionPolicy(enabled=False))] == [0.6]
