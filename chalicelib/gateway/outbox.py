"""Sealed batches between capture and the uplink: bounded, in memory, shed by a stated policy.

When the uplink falls behind, the queue fills, and frames are shed in this order:
1. fewer frames per second: at half full capture keeps every 2nd frame, at three quarters every
   4th ("thinned"). A passer-by is in view for seconds, so a lower rate still sees them.
2. the oldest batches: a batch that does not fit pushes out the oldest waiting ones
   ("queue_full"). Old frames are the ones whose alerts would come too late to act on.
3. batches older than `max_age_s` are dropped when taken ("expired") rather than sent late.
Nothing is written to disk: these are frames of passers-by.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from chalicelib.gateway.stats import GatewayStats


@dataclass(frozen=True)
class SealedBatch:
    sequence: int
    key: str
    body: bytes
    frames: int
    first_taken: float  # the clock's monotonic time of its first frame: its age counts from here
    sealed_at: datetime  # when the batch was closed (its last frame taken)


class Outbox:
    def __init__(self, capacity_bytes: int, stats: GatewayStats) -> None:
        self.capacity = capacity_bytes
        self.stats = stats
        self._q: deque[SealedBatch] = deque()
        self._bytes = self._frames = 0
        self._closed = False
        self._cv = threading.Condition()

    def thinning(self) -> int:
        """Keep one frame in this many (1: all), by how full the queue is."""
        fill = self._bytes / self.capacity
        return 4 if fill >= 0.75 else 2 if fill >= 0.5 else 1

    def put(self, batch: SealedBatch) -> None:
        with self._cv:
            while self._q and self._bytes + len(batch.body) > self.capacity:
                old = self._q.popleft()
                self._bytes -= len(old.body)
                self._frames -= old.frames
                self.stats.shed("queue_full", old.frames)
            self._q.append(batch)
            self._bytes += len(batch.body)
            self._frames += batch.frames
            self._publish()
            self._cv.notify()

    def get(self, timeout: float | None = None) -> SealedBatch | None:
        """The oldest batch; None once closed and empty (or on timeout)."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._q or self._closed, timeout):
                return None
            if not self._q:
                return None
            batch = self._q.popleft()
            self._bytes -= len(batch.body)
            self._frames -= batch.frames
            self._publish()
            return batch

    def close(self) -> None:
        """No more batches will come: getters drain what is left, then get None."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def shed_all(self, reason: str) -> int:
        with self._cv:
            n = self._frames
            self.stats.shed(reason, n)
            self._q.clear()
            self._bytes = self._frames = 0
            self._publish()
            self._cv.notify_all()
            return n

    def _publish(self) -> None:
        self.stats.set(queued_frames=self._frames, queued_bytes=self._bytes)
