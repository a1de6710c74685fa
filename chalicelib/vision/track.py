"""Linking the faces of a batch's frames into tracks: one track per person passing the camera.

Greedy IoU association frame to frame (a Hungarian solver buys nothing at the handful of faces a
frame holds), allowing a gap of a few frames for a missed detection. Appearance is not used here
on purpose: tracks are formed before anything is embedded, so only each track's best faces need
embedding at all; the decision then fuses those embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def _predicted(box: np.ndarray, velocity: np.ndarray, frames_ahead: int) -> np.ndarray:
    return box + np.concatenate([velocity, velocity]) * frames_ahead


@dataclass
class Track(Generic[T]):
    """Items (faces) in frame order, with the frame index of each."""

    frames: list[int] = field(default_factory=list)
    items: list[T] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def velocity(self) -> np.ndarray:
        """Per-frame motion of the box centre, from the last two observations."""
        if len(self.boxes) < 2:
            return np.zeros(2, np.float32)
        dt = max(1, self.frames[-1] - self.frames[-2])
        a, b = self.boxes[-2], self.boxes[-1]
        return (((b[:2] + b[2:]) - (a[:2] + a[2:])) / 2 / dt).astype(np.float32)


@dataclass(frozen=True)
class TrackerPolicy:
    min_iou: float = 0.2  # faces move between sampled frames: predicted box, generous overlap
    max_gap: int = 2  # frames a track may miss (a blink of the detector) and still continue


def link_tracks(
    frames: list[list[tuple[np.ndarray, T]]], policy: TrackerPolicy = TrackerPolicy()
) -> list[Track[T]]:
    """frames[i] holds (box, item) pairs of frame i; returns tracks in order of first frame."""
    live: list[Track[T]] = []
    done: list[Track[T]] = []
    for fi, faces in enumerate(frames):
        still = []
        for t in live:
            (done if fi - t.last_frame > policy.max_gap + 1 else still).append(t)
        live = still
        pairs = []
        for ti, t in enumerate(live):
            predicted = _predicted(t.boxes[-1], t.velocity(), fi - t.last_frame)
            for di, (box, _) in enumerate(faces):
                overlap = max(iou(predicted, box), iou(t.boxes[-1], box))
                if overlap >= policy.min_iou:
                    pairs.append((overlap, ti, di))
        used_t, used_d = set(), set()
        for _, ti, di in sorted(pairs, key=lambda p: -p[0]):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            box, item = faces[di]
            live[ti].frames.append(fi)
            live[ti].items.append(item)
            live[ti].boxes.append(np.asarray(box, np.float32))
        for di, (box, item) in enumerate(faces):
            if di not in used_d:
                live.append(Track([fi], [item], [np.asarray(box, np.float32)]))
    return sorted(done + live, key=lambda t: t.frames[0])
