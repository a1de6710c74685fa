"""What processing one frame batch gives back: counts and stage timings (safe to log), the
matches, and the camera's track state for its next batch. Every step of ingest/process.py adds
its own counts here."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.ingest.continuity import CameraTracks
from chalicelib.matching.decision import Match


@dataclass
class BatchOutcome:
    frames_total: int = 0
    frames_processed: int = 0
    frames_skipped: Counter[str] = field(default_factory=Counter)
    keyframes: int = 0  # frames detected whole
    faces_seen: int = 0
    faces_rejected: Counter[str] = field(default_factory=Counter)
    tracks: int = 0  # tracks with a face in this batch
    passings: int = 0  # of them, people first seen in this batch (not continued)
    continued: int = 0  # tracks continued from an earlier batch
    faces_embedded: int = 0
    decisions: int = 0
    matches: list[Match] = field(default_factory=list)
    # (subject, last capture time) of passings that matched in an earlier batch and go on.
    sustained: list[tuple[str, datetime]] = field(default_factory=list)
    timings_ms: Counter[str] = field(default_factory=Counter)
    carry: CameraTracks = field(default_factory=CameraTracks)  # for the camera's next batch

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Adds the time the block took to `stage`, also when it raises or returns early: what
        a refused frame cost is visible too."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[stage] += (time.perf_counter() - t0) * 1000

    def counts(self) -> dict[str, object]:
        """Counts only: safe to log and to put in metrics."""
        return {
            "frames_total": self.frames_total,
            "frames_processed": self.frames_processed,
            "frames_skipped": dict(self.frames_skipped),
            "keyframes": self.keyframes,
            "faces_seen": self.faces_seen,
            "faces_rejected": dict(self.faces_rejected),
            "tracks": self.tracks,
            "passings": self.passings,
            "continued": self.continued,
            "faces_embedded": self.faces_embedded,
            "decisions": self.decisions,
            "matches": len(self.matches),
        }
