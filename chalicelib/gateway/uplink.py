"""Uploads over a bad uplink: each failure classified, retried with exponential backoff and
jitter (tenacity) while the batch is younger than `max_age_s`, then dropped and counted.

A 403 from S3, or a 400 that names an expired or invalid token, means the grant no longer holds
(its policy expired, or the credentials that signed it did): the grant is renewed and the upload
tried again, never the same refused request. Proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) are
honoured by requests itself.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_any,
    wait_exponential_jitter,
)

from chalicelib.gateway.errors import GrantRefused, NotRunning, Rejected, Retryable
from chalicelib.gateway.grants import FileGrant, GrantSource
from chalicelib.gateway.options import GatewayOptions
from chalicelib.gateway.outbox import SealedBatch
from chalicelib.gateway.stats import GatewayStats

# S3 error codes of a 400 that a fresh grant cures: the signing credentials expired.
_GRANT_CODES = {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidAccessKeyId"}
_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def classify(status: int, body: bytes) -> Exception | None:
    """None for success, else the error that says what to do."""
    if status < 300:
        return None
    m = _CODE.search(body[:2000])
    code = m.group(1).decode(errors="replace") if m else ""
    what = f"HTTP {status} {code}".strip()
    if status == 403 or (status == 400 and code in _GRANT_CODES):
        return GrantRefused(what)
    if status in (408, 429) or status >= 500:
        return Retryable(what)
    return Rejected(what)


class PresignedUploader:
    """Uploads with a camera grant (ops/cameras.py): no AWS credentials on the gateway."""

    def __init__(self, grant: dict[str, Any] | GrantSource,
                 session: requests.Session | None = None, timeout_s: float = 20.0) -> None:
        self.grants: GrantSource = grant if hasattr(grant, "current") else FileGrant(
            grant)  # type: ignore[arg-type]
        self.http = session or requests.Session()
        self.timeout_s = timeout_s

    def upload(self, key: str, body: bytes) -> None:
        grant = self.grants.current()
        try:
            self.post(grant, key, body)
        except GrantRefused:
            self.post(self.grants.renew(grant), key, body)

    def post(self, grant: dict[str, Any], key: str, body: bytes) -> None:
        if not key.startswith(grant["prefix"]):
            raise ValueError(f"{key} is outside this camera's prefix")
        fields = {**grant["fields"], "key": key}
        try:
            resp = self.http.post(grant["url"], data=fields,
                                  files={"file": (key.rsplit("/", 1)[-1], body)},
                                  timeout=self.timeout_s)
        except requests.RequestException as exc:  # refused, reset, timed out, proxy gone
            raise Retryable(f"{type(exc).__name__}") from exc
        error = classify(resp.status_code, resp.content)
        if error is not None:
            raise error


@dataclass(frozen=True)
class Delivered:
    """What became of a batch: "sent" (with the successful try's round trip), or the reason
    its frames were shed. The caller counts it, once (run.py: a batch abandoned at shutdown
    is counted there, and its late outcome is not counted again)."""

    outcome: str
    uplink_ms: float = 0.0


class Deliverer:
    """Sends sealed batches, retrying each while it is young enough to matter."""

    def __init__(self, uploader: PresignedUploader, opts: GatewayOptions, stats: GatewayStats,
                 monotonic: Callable[[], float], stop: threading.Event) -> None:
        self.uploader, self.opts, self.stats, self.monotonic = uploader, opts, stats, monotonic
        self.stop = stop  # set when the flush bound of a shutdown ran out: give up at once

    def deliver(self, batch: SealedBatch) -> Delivered:
        age = lambda: self.monotonic() - batch.first_taken  # noqa: E731
        if age() >= self.opts.max_age_s:
            return Delivered("expired")
        refused: list[dict[str, Any]] = []
        took: list[float] = []

        def attempt() -> None:
            if refused:  # the previous try's grant was refused: renew it first
                self.uploader.grants.renew(refused.pop())
            g = self.uploader.grants.current()
            t0 = time.monotonic()
            try:
                self.uploader.post(g, batch.key, batch.body)
            except GrantRefused:
                refused.append(g)
                raise
            took.append((time.monotonic() - t0) * 1000)

        retrying = Retrying(
            retry=retry_if_exception_type((Retryable, GrantRefused)),
            wait=wait_exponential_jitter(multiplier=self.opts.retry_initial_s,
                                         jitter=self.opts.retry_initial_s,
                                         max=self.opts.retry_max_s),
            stop=stop_any(lambda _: age() >= self.opts.max_age_s,
                          lambda _: self.stop.is_set()),
            sleep=self.stop.wait,  # cut short by a shutdown
            before_sleep=lambda _: self.stats.add(retries=1),
        )
        try:
            retrying(attempt)
        except RetryError:
            return Delivered("shutdown" if self.stop.is_set() else "expired")
        except NotRunning:
            return Delivered("not_running")
        except Rejected:
            return Delivered("rejected")
        return Delivered("sent", took[-1])
