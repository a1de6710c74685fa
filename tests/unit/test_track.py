from __future__ import annotations

from typing import TypeVar

import numpy as np

from chalicelib.vision.track import Track, Tracker, TrackerPolicy, iou, one_to_one

T = TypeVar("T")


def link_tracks(frames: list[list[tuple[np.ndarray, T]]],
                policy: TrackerPolicy | None = None) -> list[Track[T]]:
    """frames[i] holds (box, item) pairs of frame i at 5 fps, every frame a full-frame detection:
    the tracks that hold at least one face, in order of first sight."""
    tracker: Tracker[T] = Tracker(policy or TrackerPolicy())
    for fi, faces in enumerate(frames):
        tracker.step(fi / 5.0, faces)
    return [tr for tr in tracker.tracks() if tr.items]


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


def test_a_fast_walker_links_where_boxes_no_longer_overlap() -> None:
    # 70 px a frame for a 40 px face (1.75 face widths): no overlap between frames.
    walk = [[(_box(10 + 70 * i, 50), i)] for i in range(6)]
    assert [len(t.items) for t in link_tracks(walk)] == [6]
    # Two people side by side walking together stay two.
    pair = [[(_box(10 + 30 * i, 50), "a"), (_box(150 + 30 * i, 50), "b")] for i in range(6)]
    assert sorted(set(t.items) == {t.items[0]} and len(t.items) for t in link_tracks(pair)) \
        == [6, 6]


def test_one_to_one_takes_the_closest_pair_first() -> None:
    # Track 0 is closest to face 1, which track 1 also wants: track 1 gets its second choice.
    links = one_to_one([(0.9, 0, 0), (0.1, 0, 1), (0.2, 1, 1), (0.5, 1, 0)])
    assert links == [(0, 1), (1, 0)]
    # A track with no face left stays unlinked; a face no track wants stays free.
    assert one_to_one([(0.1, 0, 0), (0.2, 1, 0)]) == [(0, 0)]
    assert one_to_one([]) == []


def test_one_to_one_ties_go_to_the_lower_track_then_face() -> None:
    # Whatever order the candidates come in (the region searches list them track by track).
    assert one_to_one([(0.5, 1, 0), (0.5, 0, 1), (0.5, 0, 0)]) == [(0, 0)]
    assert one_to_one([(0.5, 1, 1), (0.5, 1, 0), (0.5, 0, 1)]) == [(0, 1), (1, 0)]


def test_one_to_one_a_face_seen_twice_goes_to_one_track() -> None:
    # Faces 0 and 1 are one face found by two region searches; face 2 is another person.
    same = {frozenset({0, 1})}
    links = one_to_one([(0.3, 0, 0), (0.1, 1, 1), (0.4, 0, 2)],
                       lambda a, b: a == b or frozenset({a, b}) in same)
    assert links == [(1, 1), (0, 2)]
    # Without the rule both copies would be taken.
    assert one_to_one([(0.3, 0, 0), (0.1, 1, 1)]) == [(1, 1), (0, 0)]
