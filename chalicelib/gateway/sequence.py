"""Batch sequence numbers, which name the batch's object (frames/<dep>/<cam>/<seq>.lfrb).

By default a batch's sequence is the capture time of its first frame in epoch milliseconds (kept
strictly increasing within a run). A restarted gateway therefore never reuses the key of a batch
that may still wait in the bucket, with nothing to persist on the van: its new frames are later
than every frame before the restart. The worker's continuity and alert identity go by capture
time and by (key, ETag), not by consecutive numbers, so a gap in sequences means nothing to
them. The one way to reuse a key is a clock stepped back by more than the restart took; capture
times would then be wrong too, so vans keep their clocks on NTP or GPS time.

Recorded footage with the same `--start` gives the same keys on a second run: the same frames
under the same name, which the worker recognises as a batch it applied (same bytes, same ETag).

`--first-sequence N` keeps the old counting from N, for tools that expect 0, 1, 2, ...
"""

from __future__ import annotations

from datetime import datetime


class CaptureTimeSequence:
    def __init__(self) -> None:
        self.last = -1

    def next(self, first_captured_at: datetime) -> int:
        self.last = max(self.last + 1, int(first_captured_at.timestamp() * 1000))
        return self.last


class CountingSequence:
    def __init__(self, first: int) -> None:
        self.last = first - 1

    def next(self, first_captured_at: datetime) -> int:
        self.last += 1
        return self.last
