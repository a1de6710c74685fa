from __future__ import annotations

import numpy as np

from chalicelib.vision.track import TrackerPolicy, iou, link_tracks


def _box(x: float, y: float, s: float = 40) -> np.ndarray:
    return np.array([x, y, x + s, y + s], np.float32)


def test_iou() -> None:
    assert iou(_box(0, 0), _box(0, 0)) == 1.0
    assert iou(_box(0, 0), _box(100, 100)) == 0.0
    assert abs(iou(_box(0, 0), _box(20, 0)) - 1 / 3) < 1e-6


def test_two_people_crossing_keep_their_tracks() -> None:
    # A walks right, B walks left along a lower line; they pass each other mid-sequence.
    frames = [[(_box(10 + 25 * i, 50), "A"), (_box(260 - 25 * i, 70), "B")] for i in range(11)]
    tracks = link_tracks(frames)
    assert len(tracks) == 2
    assert sorted(set(t.items) == {t.items[0]} for t in tracks) == [True, True]
    assert all(len(t.items) == 11 for t in tracks)


def test_gap_within_limit_is_bridged_beyond_it_splits() -> None:
    seq = [[(_box(10 * i, 0), i)] for i in range(8)]
    seq[3] = []  # one missed detection
    assert len(link_tracks(seq)) == 1
    seq[4] = seq[5] = seq[6] = []  # a longer absence
    assert len(link_tracks(seq, TrackerPolicy(max_gap_s=0.5))) == 2


def test_far_jump_is_a_new_person() -> None:
    tracks = link_tracks([[(_box(0, 0), 1)], [(_box(300, 300), 2)]])
    assert [t.items for t in tracks] == [[1], [2]]


def test_empty() -> None:
    assert link_tracks([[], []]) == []
