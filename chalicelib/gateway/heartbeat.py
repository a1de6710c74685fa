"""The gateway's state, reported to the API every few seconds (`LFR_GATEWAY_HEARTBEAT_S`):
counts of frames captured, sent and shed by reason, retries, renewals, reconnects, the uplink's
round trip and the last capture time. Counts and times only, nothing about anyone in view. The
API turns these into each camera's live / degraded / dark state (ops/camera_health.py)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from chalicelib.gateway.grants import TokenFile
from chalicelib.gateway.stats import GatewayStats


class Heartbeat:
    def __init__(self, api: str, deployment_id: str, camera_id: str, token: TokenFile,
                 http: requests.Session, stats: GatewayStats, interval_s: float,
                 timeout_s: float = 10.0) -> None:
        self.url = f"{api.rstrip('/')}/deployments/{deployment_id}/cameras/{camera_id}/heartbeat"
        self.token, self.http, self.stats = token, http, stats
        self.interval_s, self.timeout_s = interval_s, timeout_s
        # Names this run of the gateway, so the API adds up the counts of several runs.
        self.run_id = uuid.uuid4().hex[:16]
        self.started_at = datetime.now(UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the loop and sends a last report (state "stopped"), each within a bound: a
        gateway told to stop must not hang on a dead uplink."""
        self._stop.set()
        self._thread.join(1.0)  # a report stuck on a dead link is left to its daemon thread
        self.send(stopped=True, timeout_s=min(self.timeout_s, 3.0))

    def body(self, stopped: bool = False) -> dict[str, Any]:
        s = self.stats.summary()
        return {"run_id": self.run_id, "started_at": self.started_at.isoformat(),
                "interval_s": self.interval_s, "stopped": stopped,
                **{k: s[k] for k in (
                    "frames_read", "frames_sent", "frames_shed", "batches_sent", "retries",
                    "grant_renewals", "reconnects", "source_state", "last_capture_at",
                    "watching_s", "uplink_ms", "queued_frames")}}

    def send(self, stopped: bool = False, timeout_s: float | None = None) -> bool:
        try:
            resp = self.http.post(self.url, json=self.body(stopped),
                                  timeout=timeout_s or self.timeout_s,
                                  headers={"Authorization": f"Bearer {self.token.read()}"})
            ok = resp.status_code < 300
        except (requests.RequestException, OSError, RuntimeError):
            ok = False
        self.stats.add(heartbeats_sent=int(ok), heartbeats_failed=int(not ok))
        return ok

    def _loop(self) -> None:
        self.send()
        while not self._stop.wait(self.interval_s):
            self.send()
