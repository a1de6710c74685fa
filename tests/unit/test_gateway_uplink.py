"""The gateway's pure parts (issue 21): how upload failures are read, the shedding policy, retries
that end, grants renewed before they expire and at once when refused, a token file re-read when
it changes, restart-safe sequences, and a live source that is reopened."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from chalicelib.gateway import GatewayOptions, run_gateway
from chalicelib.gateway.capture import SystemClock, live_frames
from chalicelib.gateway.errors import GrantRefused, NotRunning, Rejected, Retryable
from chalicelib.gateway.grants import ApiGrants, FileGrant, TokenFile
from chalicelib.gateway.outbox import Outbox, SealedBatch
from chalicelib.gateway.sequence import CaptureTimeSequence
from chalicelib.gateway.stats import GatewayStats
from chalicelib.gateway.uplink import Deliverer, PresignedUploader, classify

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "body", "kind"), [
    (204, b"", None),
    (403, b"<Error><Code>AccessDenied</Code><Message>Policy expired.</Message></Error>",
     GrantRefused),
    (400, b"<Error><Code>ExpiredToken</Code></Error>", GrantRefused),
    (400, b"<Error><Code>EntityTooLarge</Code></Error>", Rejected),
    (404, b"", Rejected),
    (429, b"", Retryable),
    (503, b"<Error><Code>SlowDown</Code></Error>", Retryable),
    (500, b"", Retryable),
])
def test_each_answer_says_what_to_do(status: int, body: bytes, kind: type | None) -> None:
    got = classify(status, body)
    assert (None if got is None else type(got)) is kind


def _batch(seq: int, frames: int = 1, size: int = 100, taken: float = 0.0) -> SealedBatch:
    return SealedBatch(seq, f"frames/d/c/{seq:012d}.lfrb", b"x" * size, frames, taken, NOW)


def test_a_full_queue_thins_the_rate_first_then_drops_the_oldest() -> None:
    stats = GatewayStats()
    box = Outbox(1000, stats)
    assert box.thinning() == 1
    for i in range(5):
        box.put(_batch(i, frames=2, size=100))
    assert box.thinning() == 2  # half full: every 2nd frame
    for i in range(5, 8):
        box.put(_batch(i, frames=2, size=100))
    assert box.thinning() == 4  # three quarters: every 4th
    for i in range(8, 12):
        box.put(_batch(i, frames=2, size=100))
    assert stats.frames_shed["queue_full"] == 4  # batches 0 and 1 went, oldest first
    assert [box.get(0).sequence for _ in range(10)] == list(range(2, 12))  # type: ignore[union-attr]
    box.close()
    assert box.get(0) is None


class ScriptedUploader(PresignedUploader):
    """Answers each try from a script of errors (None: success); counts the grants used."""

    def __init__(self, script: list[Exception | None], grants: Any, clock: list[float],
                 step_s: float = 0.0) -> None:
        super().__init__(grants)
        self.script, self.clock, self.step_s = script, clock, step_s
        self.used: list[Any] = []

    def post(self, grant: dict[str, Any], key: str, body: bytes) -> None:
        self.used.append(grant["n"])
        self.clock[0] += self.step_s  # each try takes this long
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome


class CountingGrants:
    def __init__(self) -> None:
        self.n, self.renewed = 0, 0

    def current(self) -> dict[str, Any]:
        return {"n": self.n}

    def renew(self, refused: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        self.renewed += 1
        return self.current()


def _deliverer(script: list[Exception | None], grants: Any = None, step_s: float = 0.0,
               max_age_s: float = 120.0) -> tuple[Deliverer, ScriptedUploader, GatewayStats]:
    clock = [0.0]
    up = ScriptedUploader(script, grants or CountingGrants(), clock, step_s)
    stats = GatewayStats()
    opts = GatewayOptions(max_age_s=max_age_s, retry_initial_s=0.001, retry_max_s=0.002)
    return Deliverer(up, opts, stats, lambda: clock[0], threading.Event()), up, stats


def test_connection_errors_and_5xx_are_retried_until_sent() -> None:
    d, up, stats = _deliverer([Retryable("refused"), Retryable("HTTP 503"), None])
    assert d.deliver(_batch(1, frames=3)).outcome == "sent"
    assert stats.retries == 2 and len(up.used) == 3


def test_retries_end_when_the_batch_is_too_old_to_matter() -> None:
    d, up, stats = _deliverer([Retryable("refused")] * 100, step_s=30.0, max_age_s=120.0)
    assert d.deliver(_batch(1, frames=3)).outcome == "expired"
    assert len(up.used) == 4  # tried at 0, 30, 60 and 90 s of age; 120 s is too old


def test_a_batch_already_too_old_is_not_tried() -> None:
    d, up, stats = _deliverer([], max_age_s=5.0)
    assert d.deliver(_batch(1, taken=-6.0)).outcome == "expired"
    assert up.used == []


def test_a_refused_grant_is_renewed_not_retried_as_it_was() -> None:
    grants = CountingGrants()
    d, up, stats = _deliverer([GrantRefused("HTTP 403 AccessDenied"), None], grants)
    assert d.deliver(_batch(1)).outcome == "sent"
    assert up.used == [0, 1] and grants.renewed == 1  # the second try carried the new grant


def test_a_fixed_grant_that_is_refused_drops_the_batch_as_rejected() -> None:
    d, up, stats = _deliverer([GrantRefused("HTTP 403")], FileGrant({"n": 7}))
    assert d.deliver(_batch(1, frames=2)).outcome == "rejected"


def test_a_4xx_no_grant_cures_is_dropped_at_once() -> None:
    d, up, stats = _deliverer([Rejected("HTTP 400 EntityTooLarge")])
    assert d.deliver(_batch(1)).outcome == "rejected"
    assert len(up.used) == 1


class FakeResponse:
    def __init__(self, status: int, payload: dict[str, Any] | None = None) -> None:
        self.status_code, self.payload, self.text = status, payload or {}, ""

    def json(self) -> dict[str, Any]:
        return self.payload


class FakeApi:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.tokens: list[str] = []

    def post(self, url: str, headers: dict[str, str], timeout: float) -> FakeResponse:
        self.tokens.append(headers["Authorization"])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _grant(n: int, expires_s: int = 100) -> FakeResponse:
    return FakeResponse(200, {"url": "u", "fields": {}, "prefix": "p", "n": n,
                              "expires_s": expires_s})


def test_grants_are_renewed_at_80_percent_of_their_life(tmp_path: Path) -> None:
    import requests

    (tmp_path / "t").write_text("tok-1")
    t = [0.0]
    api = FakeApi([_grant(1), _grant(2), requests.ConnectionError("down"), _grant(3)])
    renewals: list[int] = []
    g = ApiGrants("http://api", "d", "c", TokenFile(tmp_path / "t"), api,  # type: ignore[arg-type]
                  lambda: t[0], on_renewal=lambda: renewals.append(1))
    assert g.current()["n"] == 1
    t[0] = 79.0
    assert g.current()["n"] == 1  # not yet
    t[0] = 80.0
    assert g.current()["n"] == 2 and len(renewals) == 1
    t[0] = 170.0  # due again, and the API is out of reach: the grant in hand still serves
    assert g.current()["n"] == 2
    t[0] = 171.0
    assert g.current()["n"] == 3 and len(renewals) == 2


def test_a_grant_is_not_served_past_its_expiry_when_the_api_is_down(tmp_path: Path) -> None:
    import requests

    (tmp_path / "t").write_text("tok-1")
    t = [0.0]
    api = FakeApi([_grant(1, 10), requests.ConnectionError("down")])
    g = ApiGrants("http://api", "d", "c", TokenFile(tmp_path / "t"), api,  # type: ignore[arg-type]
                  lambda: t[0])
    g.current()
    t[0] = 10.0
    with pytest.raises(Retryable):
        g.current()


def test_a_refused_grant_is_renewed_but_not_more_often_than_every_5s(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tok-1")
    t = [0.0]
    api = FakeApi([_grant(1), _grant(2), _grant(3)])
    g = ApiGrants("http://api", "d", "c", TokenFile(tmp_path / "t"), api,  # type: ignore[arg-type]
                  lambda: t[0])
    first = g.current()
    t[0] = 5.0
    second = g.renew(first)
    assert second["n"] == 2
    assert g.renew(first)["n"] == 2  # another uploader's refusal of the old one: no refetch
    t[0] = 7.0
    assert g.renew(second)["n"] == 2  # refused again 2 s after it was issued: not yet
    t[0] = 10.0
    assert g.renew(second)["n"] == 3


def test_a_deployment_not_running_sheds_and_asks_again_later(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tok-1")
    t = [0.0]
    api = FakeApi([FakeResponse(403), _grant(1)])
    g = ApiGrants("http://api", "d", "c", TokenFile(tmp_path / "t"), api,  # type: ignore[arg-type]
                  lambda: t[0])
    with pytest.raises(NotRunning):
        g.current()
    t[0] = 5.0
    with pytest.raises(NotRunning):
        g.current()  # believed for a while: the API is not asked again
    assert len(api.tokens) == 1
    t[0] = 11.0
    assert g.current()["n"] == 1


def test_the_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    token = TokenFile(path)
    assert token.read() == "first"
    path.write_text("second-token\n")  # a refreshed token (another size, another mtime)
    assert token.read() == "second-token"
    path.write_text("")
    with pytest.raises(Retryable):
        token.read()


def test_sequences_from_capture_time_never_repeat_across_a_restart() -> None:
    first = CaptureTimeSequence()
    before = [first.next(NOW + timedelta(milliseconds=i)) for i in (0, 0, 1, 400)]
    assert before == sorted(set(before))  # strictly increasing, even for equal times
    restarted = CaptureTimeSequence()  # a new process: nothing carried over
    assert restarted.next(NOW + timedelta(seconds=5)) > max(before)


class DroppingCamera:
    """Delivers `n` frames, then fails (a stream that drops)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_a_live_stream_that_drops_is_reopened_and_its_break_marked() -> None:
    opened: list[int] = []

    def opener(source: str, read_timeout_s: float) -> DroppingCamera:
        opened.append(1)
        if len(opened) == 2:
            raise ValueError("cannot open")  # the camera is still down once
        return DroppingCamera(3)

    class Ticking(SystemClock):
        t = 0.0

        def monotonic(self) -> float:  # a second per frame read: every frame is kept
            self.t += 1.0
            return self.t

    stats = GatewayStats()
    opts = GatewayOptions(fps=5, max_reconnects=3, reconnect_max_s=0.01)
    got = list(live_frames("rtsp://cam", opts, Ticking(), stats, threading.Event(), opener))
    marks = [f is None for f in got]
    # 3 frames, a break, a failed reopen (another break), 3 frames, a break, 3 frames; then
    # the reconnect limit ends it.
    assert marks == [False] * 3 + [True, True] + [False] * 3 + [True] + [False] * 3
    assert stats.reconnects == 3 and len(opened) == 4 and stats.source_state == "ended"


def test_when_the_uplink_stalls_every_frame_is_still_accounted_for(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(40):
        noise = np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), noise)
    stats = GatewayStats()
    release = threading.Event()

    class Stalled:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def upload(self, key: str, body: bytes) -> None:
            release.wait(30)  # the uplink hangs until capture has read everything
            self.sent.append(key)

    def read_all() -> None:
        while stats.frames_read < 40:
            threading.Event().wait(0.001)
        release.set()

    watcher = threading.Thread(target=read_all)
    watcher.start()
    up = Stalled()
    report = run_gateway(str(folder), up, "d", "c",
                         GatewayOptions(fps=5, batch_frames=1, uploaders=1, queue_bytes=40_000,
                                        start=NOW), stats=stats)
    watcher.join()
    s = report.summary
    assert s["frames_read"] == 40 == s["frames_sent"] + s["frames_shed_total"]
    assert s["frames_shed"]["thinned"] > 0 and s["frames_shed"]["queue_full"] > 0, s
    # The oldest waiting batches went first: what was sent after the first is the newest.
    seqs = sorted(report.batches)
    assert seqs[-1].endswith(f"{int((NOW + timedelta(seconds=39 / 5)).timestamp() * 1000):012d}"
                             ".lfrb")
