"""The Chalice app over its in-process HTTP test client, with JSON bodies and local tokens."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.auth import issue_local_token


@dataclass
class ApiClient:
    client: Any  # chalice.test.Client
    secret: str

    def token(self, sub: str, roles: Iterable[str], deployments: Iterable[str] = (),
              camera: str | None = None, ttl_s: int = 600, now: float | None = None) -> str:
        return issue_local_token(self.secret, sub, roles, deployments, camera, ttl_s, now)

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        return getattr(self.client.http, method.lower())(path, **kwargs)

    def ok(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        """The JSON body of a 200 response; anything else raises with the API's message."""
        resp = self.call(method, path, token, body)
        if resp.status_code != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code} {resp.body[:300]!r}")
        return resp.json_body
