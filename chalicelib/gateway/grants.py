"""The camera's upload grant (a presigned POST, ops/cameras.py), held for the whole deployment.

`ApiGrants` fetches the grant from the API as the camera's own principal (the `camera` role) and
renews it before it expires: at 80% of its lifetime, and at once when S3 refuses it. While the
API cannot be reached, the grant in hand is used until it actually expires. The bearer token
comes from a file that is re-read whenever it changes (locally `lfr token --role camera`; on AWS
whatever refreshes the camera's Cognito token writes it there).

`FileGrant` is a grant read once from a file (`--grant`, tests and one-off uploads): it cannot
be renewed, so a refusal of it is final.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import requests

from chalicelib.gateway.errors import NotRunning, Rejected, Retryable

RENEW_AT = 0.8  # of a grant's lifetime
NOT_RUNNING_RETRY_S = 10.0  # how long a "not running" answer is believed before asking again
# A grant fetched this recently and refused is not fetched again: a fresh grant refused means
# something else (a clock or a proxy), and every grant issued is an audit row.
MIN_RENEW_S = 5.0


class GrantSource(Protocol):
    def current(self) -> dict[str, Any]: ...

    def renew(self, refused: dict[str, Any]) -> dict[str, Any]: ...


class FileGrant:
    def __init__(self, grant: dict[str, Any]) -> None:
        self.grant = grant

    def current(self) -> dict[str, Any]:
        return self.grant

    def renew(self, refused: dict[str, Any]) -> dict[str, Any]:
        raise Rejected("the grant was refused and a grant from a file cannot be renewed")


class TokenFile:
    """A bearer token in a file, re-read when the file changes (mtime or size)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._token = ""

    def read(self) -> str:
        st = os.stat(self.path)
        if (st.st_mtime_ns, st.st_size) != self._seen:
            self._token = self.path.read_text().strip()
            self._seen = (st.st_mtime_ns, st.st_size)
        if not self._token:
            raise Retryable(f"token file {self.path} is empty")
        return self._token


class ApiGrants:
    def __init__(self, api: str, deployment_id: str, camera_id: str, token: TokenFile,
                 http: requests.Session, monotonic: Callable[[], float],
                 on_renewal: Callable[[], None] = lambda: None, timeout_s: float = 20.0) -> None:
        self.url = f"{api.rstrip('/')}/deployments/{deployment_id}/cameras/{camera_id}/grant"
        self.token, self.http, self.monotonic = token, http, monotonic
        self.on_renewal, self.timeout_s = on_renewal, timeout_s
        self._lock = threading.Lock()
        self._grant: dict[str, Any] | None = None
        self._renew_at = self._expires_at = self._fetched_at = 0.0
        self._not_running_until = 0.0

    def current(self) -> dict[str, Any]:
        with self._lock:
            if self._grant is None or self.monotonic() >= self._renew_at:
                try:
                    self._fetch()
                except Retryable:
                    # The API is out of reach: the grant in hand serves until it expires.
                    if self._grant is None or self.monotonic() >= self._expires_at:
                        raise
            return self._grant  # type: ignore[return-value]

    def renew(self, refused: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            # Not if another uploader renewed it already, nor if it is only seconds old.
            if self._grant is refused and self.monotonic() - self._fetched_at >= MIN_RENEW_S:
                self._fetch()
            return self._grant  # type: ignore[return-value]

    def _fetch(self) -> None:
        now = self.monotonic()
        if now < self._not_running_until:
            raise NotRunning("the deployment is not running (asked less than 10 s ago)")
        try:
            resp = self.http.post(self.url, headers={
                "Authorization": f"Bearer {self.token.read()}"}, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise Retryable(f"grant: {type(exc).__name__}") from exc
        if resp.status_code in (403, 404):
            # Not running now, or not this camera's deployment: shed, and ask again later.
            self._not_running_until = now + NOT_RUNNING_RETRY_S
            raise NotRunning(f"grant refused: HTTP {resp.status_code} {resp.text[:200]}")
        if resp.status_code != 200:  # 401 (a token being refreshed), 429, 5xx, a proxy's 503
            raise Retryable(f"grant: HTTP {resp.status_code}")
        grant = resp.json()
        lifetime = float(grant.get("expires_s", 3600))
        renewed = self._grant is not None
        self._grant = grant
        self._fetched_at = now
        self._expires_at = now + lifetime
        self._renew_at = now + lifetime * RENEW_AT
        if renewed:
            self.on_renewal()
