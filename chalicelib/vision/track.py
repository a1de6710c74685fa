"""Linking faces into tracks, online and in time: one track per person passing the camera.

Faces are associated with the live tracks frame by frame by motion alone: the centre predicted
from the track's velocity, in units of the face's own size, so that a fast walker close to the
camera (moving more than a face width between sampled frames, where boxes no longer overlap)
still links, while two people side by side do not swap. A track's first link, before any velocity
is known, allows a walking person's displacement; later links allow a small residual around the
prediction. Greedy lowest-cost association (a Hungarian solver buys nothing at the handful of
faces a frame holds).

Appearance is not used on purpose: tracks are formed before anything is embedded, so only each
track's best faces need embedding at all. Times are seconds, so tracks continue across frame
batches of one camera (ingest/continuity.py carries their geometry from batch to batch).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


# Two boxes of one frame that overlap this much are one face (region searches of nearby tracks
# find the same face more than once).
SAME_FACE_IOU = 0.5


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float32)


def size(box: np.ndarray) -> float:
    return max(1.0, float(np.sqrt(max(box[2] - box[0], 1) * max(box[3] - box[1], 1))))


def shifted(box: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return (np.asarray(box, np.float32) + np.concatenate([delta, delta])).astype(np.float32)


@dataclass(frozen=True)
class TrackerPolicy:
    # A track not seen for this long has left. Bridges a missed detection and the frames between
    # full-frame detections (ingest/keyframes.py looks at settled tracks only on those).
    max_gap_s: float = 1.3
    # First link: how far the centre may move, in face sizes per second (a brisk walk across
    # the image close to the camera is ~10), plus a constant slack for detector jitter.
    max_speed: float = 12.0
    slack: float = 0.5
    # Later links: distance from the predicted centre, in face sizes, growing with the gap.
    max_residual: float = 1.0
    residual_per_s: float = 1.0
    # Face size may change this much between two observations (walking towards the camera).
    max_size_ratio: float = 1.6


@dataclass
class Track(Generic[T]):
    """A person's passing: the observations of this batch, and the motion state.

    `carried` marks a track that began in an earlier batch (its observations there are not
    held, only the geometry the continuity state keeps)."""

    tid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    times: list[float] = field(default_factory=list)
    items: list[T] = field(default_factory=list)
    first_t: float = 0.0
    last_t: float = 0.0
    first_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    last_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    velocity: np.ndarray | None = None  # px per second of the box centre; None until 2 views
    carried: bool = False

    def predict(self, t: float) -> np.ndarray:
        """The box where the face should be at time t (before first_t: extrapolated back)."""
        if self.velocity is None:
            return self.last_box if t >= self.last_t else self.first_box
        if t >= self.last_t:
            return shifted(self.last_box, self.velocity * (t - self.last_t))
        return shifted(self.first_box, self.velocity * (t - self.first_t))

    def observe(self, t: float, box: np.ndarray, item: T) -> None:
        box = np.asarray(box, np.float32)
        if not self.times and not self.carried:
            self.first_t = self.last_t = t
            self.first_box = self.last_box = box
        elif t > self.last_t:
            self._move((centre(box) - centre(self.last_box)) / (t - self.last_t))
            self.last_t, self.last_box = t, box
        elif t < self.first_t:  # a batch delivered late: the passing extends backwards
            self._move((centre(self.first_box) - centre(box)) / (self.first_t - t))
            self.first_t, self.first_box = t, box
        self.times.append(t)
        self.items.append(item)

    def _move(self, v: np.ndarray) -> None:
        self.velocity = v if self.velocity is None else 0.5 * self.velocity + 0.5 * v


def one_to_one(pairs: Iterable[tuple[float, int, int]],
               same: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
    """(cost, track, face) candidates to links: closest first, one face per track and one track
    per face, so two people side by side each keep their own even when one of them is missed.
    Ties go to the lower track, then face, index. `same(a, b)`: whether faces a and b are one
    face seen twice (default: the same index). Returns (track, face) in the order linked."""
    linked_tracks: set[int] = set()
    taken: list[int] = []
    links: list[tuple[int, int]] = []
    for _, ti, fi in sorted(pairs):
        if ti in linked_tracks or (fi in taken if same is None
                                   else any(same(fi, u) for u in taken)):
            continue
        linked_tracks.add(ti)
        taken.append(fi)
        links.append((ti, fi))
    return links


def link_cost(track: Track[T], t: float, box: np.ndarray, policy: TrackerPolicy) -> float | None:
    """How far `box` at time t is from where the track's face should be, in face sizes;
    None when it cannot be the same person."""
    ref = track.last_box if t >= track.last_t else track.first_box
    ratio = size(box) / size(ref)
    if not 1 / policy.max_size_ratio <= ratio <= policy.max_size_ratio:
        return None
    dt = abs(t - (track.last_t if t >= track.last_t else track.first_t))
    predicted = track.predict(t)
    scale = (size(box) + size(ref)) / 2
    residual = float(np.linalg.norm(centre(box) - centre(predicted))) / scale
    if track.velocity is None:
        allowed = policy.max_speed * dt + policy.slack
    else:
        allowed = policy.max_residual + policy.residual_per_s * dt
    if residual <= allowed:
        return residual
    overlap = iou(predicted, box)
    return 1.0 - overlap if overlap >= 0.3 else None


class Tracker(Generic[T]):
    """Online association, frame by frame in capture order."""

    def __init__(self, policy: TrackerPolicy = TrackerPolicy(),
                 carried: Sequence[Track[T]] = ()) -> None:
        self.policy = policy
        self.live: list[Track[T]] = list(carried)
        self.done: list[Track[T]] = []

    def _expire(self, t: float) -> None:
        still = []
        for tr in self.live:
            (self.done if t - tr.last_t > self.policy.max_gap_s else still).append(tr)
        self.live = still

    def leave(self, t: float, width: float, height: float) -> None:
        """Tracks whose face should be outside the image by now have left it: a face entering
        where one left is somebody else."""
        still = []
        for tr in self.live:
            if tr.velocity is None or t <= tr.last_t:
                still.append(tr)
                continue
            c = centre(tr.predict(t))
            inside = 0 <= c[0] <= width and 0 <= c[1] <= height
            (still if inside else self.done).append(tr)
        self.live = still

    def step(self, t: float, faces: Sequence[tuple[np.ndarray, T]]) -> None:
        """All the faces of one frame (a full-frame detection): link or start tracks."""
        self._expire(t)
        pairs = [(cost, ti, di) for ti, tr in enumerate(self.live)
                 if tr.last_t < t  # else it holds this frame already (from a region search)
                 for di, (box, _) in enumerate(faces)
                 if (cost := link_cost(tr, t, box, self.policy)) is not None]
        links = one_to_one(pairs)
        for ti, di in links:
            self.live[ti].observe(t, faces[di][0], faces[di][1])
        linked = {di for _, di in links}
        for di, (box, item) in enumerate(faces):
            if di not in linked:
                tr: Track[T] = Track()
                tr.observe(t, box, item)
                self.live.append(tr)

    def tracks(self) -> list[Track[T]]:
        """Every track, carried or new, in order of first sight."""
        return sorted(self.done + self.live, key=lambda tr: tr.first_t)
