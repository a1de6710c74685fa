"""What a gateway counts: frames read, sent and shed (by reason), retries, renewals, reconnects.
Counts, times and ids only: nothing about who was in the frames.

Every frame read ends in exactly one place: sent, or shed under one reason. `summary()` is the
gateway's last line on stdout, and `frames_read == frames_sent + sum(frames_shed)` holds in it
once the gateway has stopped (frames still queued at a snapshot are `frames_pending`).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from typing import Any

from chalicelib.camera_report import SHED_REASONS


class GatewayStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_read = 0
        self.frames_sent = 0
        self.frames_shed: Counter[str] = Counter()
        self.batches_sent = 0
        self.bytes_sent = 0
        self.retries = 0
        self.grant_renewals = 0
        self.reconnects = 0
        self.heartbeats_sent = 0
        self.heartbeats_failed = 0
        self.source_state = "opening"  # opening | streaming | reconnecting | ended
        self.last_capture_at: datetime | None = None
        self.watching_s = 0.0  # time the source was delivering frames
        self.uplink_ms: float | None = None  # the last successful upload's round trip
        self.queued_frames = 0
        self.queued_bytes = 0

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def shed(self, reason: str, frames: int) -> None:
        assert reason in SHED_REASONS, reason
        if frames:
            with self._lock:
                self.frames_shed[reason] += frames

    def set(self, **values: Any) -> None:
        with self._lock:
            for name, v in values.items():
                setattr(self, name, v)

    def sent(self, frames: int, nbytes: int, uplink_ms: float) -> None:
        with self._lock:
            self.frames_sent += frames
            self.batches_sent += 1
            self.bytes_sent += nbytes
            self.uplink_ms = uplink_ms

    def summary(self) -> dict[str, Any]:
        with self._lock:
            shed = {r: self.frames_shed[r] for r in SHED_REASONS if self.frames_shed[r]}
            return {
                "frames_read": self.frames_read,
                "frames_sent": self.frames_sent,
                "frames_shed": shed,
                "frames_shed_total": sum(shed.values()),
                "frames_pending": self.frames_read - self.frames_sent - sum(shed.values()),
                "batches_sent": self.batches_sent,
                "bytes_sent": self.bytes_sent,
                "retries": self.retries,
                "grant_renewals": self.grant_renewals,
                "reconnects": self.reconnects,
                "heartbeats_sent": self.heartbeats_sent,
                "heartbeats_failed": self.heartbeats_failed,
                "source_state": self.source_state,
                "last_capture_at": (self.last_capture_at.isoformat()
                                    if self.last_capture_at else None),
                "watching_s": round(self.watching_s, 1),
                "uplink_ms": None if self.uplink_ms is None else round(self.uplink_ms, 1),
                "queued_frames": self.queued_frames,
                "queued_bytes": self.queued_bytes,
            }
