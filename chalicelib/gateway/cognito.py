"""The camera's bearer token on AWS: a Cognito ID token, refreshed with the camera's refresh
token (InitiateAuth, REFRESH_TOKEN_AUTH) at 80% of its life, and held in memory only.

InitiateAuth with a refresh token needs no AWS credentials (no SigV4): it is one JSON POST to
the user pool's regional endpoint, sent with requests like the rest of the gateway's traffic, so
it goes through the van's proxy too, and the gateway needs no boto3. The refresh token itself is
read from a file (re-read when it changes, as a rotated one would be written).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests

from chalicelib.gateway.errors import Retryable
from chalicelib.gateway.grants import TokenFile

REFRESH_AT = 0.8  # of the ID token's lifetime


def cognito_endpoint(region: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/"


class CognitoToken:
    """Same interface as TokenFile: `read()` gives a valid bearer token."""

    def __init__(self, endpoint: str, client_id: str, refresh_token_file: str | Path,
                 http: requests.Session, monotonic: Callable[[], float] = time.monotonic,
                 timeout_s: float = 20.0) -> None:
        self.endpoint, self.client_id = endpoint, client_id
        self.refresh = TokenFile(refresh_token_file)
        self.http, self.monotonic, self.timeout_s = http, monotonic, timeout_s
        self._token = ""
        self._refresh_at = 0.0

    def read(self) -> str:
        if not self._token or self.monotonic() >= self._refresh_at:
            self._renew()
        return self._token

    def _renew(self) -> None:
        now = self.monotonic()
        try:
            resp = self.http.post(self.endpoint, timeout=self.timeout_s, headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            }, json={"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": self.client_id,
                     "AuthParameters": {"REFRESH_TOKEN": self.refresh.read()}})
        except requests.RequestException as exc:
            raise Retryable(f"token refresh: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            # A revoked or expired refresh token (NotAuthorizedException) needs a person; the
            # gateway keeps asking, and its camera shows dark until someone fixes it.
            kind = resp.headers.get("x-amzn-ErrorType", "").split(":")[0]
            raise Retryable(f"token refresh: HTTP {resp.status_code} {kind}".strip())
        result = resp.json()["AuthenticationResult"]
        self._token = result["IdToken"]
        self._refresh_at = now + float(result.get("ExpiresIn", 3600)) * REFRESH_AT
