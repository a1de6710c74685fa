"""Who is calling, and may they? Roles come from the identity provider's groups.

On AWS, API Gateway's Cognito user pool authorizer verifies the token and hands the claims to
the function (request context). Locally there is no API Gateway, so the app verifies tokens
itself: HS256 tokens with the same claims as Cognito ID tokens, signed with the local stage's
secret (`LFR_LOCAL_AUTH_SECRET`). Without that secret set (as on AWS), a request that did not
come through the authorizer is refused: local verification can never open a deployed API.

Roles: operator (watchlists, deployments), officer (alerts of the deployments they are assigned
to: claim `custom:deployments`), auditor (audit trail, records), camera (upload grants for its own
camera: claim `custom:camera` = "<deployment>/<camera>").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

ROLES = frozenset({"operator", "officer", "auditor", "camera"})
LOCAL_ISSUER = "lfr-local"
LOCAL_AUDIENCE = "lfr-api"


class Unauthenticated(Exception):
    """No valid identity: 401."""


class Forbidden(Exception):
    """A valid identity without the right: 403."""


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[str]
    deployments: frozenset[str] = frozenset()
    camera: str | None = None  # "<deployment>/<camera>" for camera identities

    def require(self, *roles: str) -> None:
        if not self.roles & set(roles):
            raise Forbidden(f"needs role {' or '.join(roles)}")

    def require_deployment(self, deployment_id: str) -> None:
        """Officers only reach the deployments they are assigned to; operators and auditors
        oversee all of them."""
        if self.roles & {"operator", "auditor"}:
            return
        if "officer" in self.roles and deployment_id in self.deployments:
            return
        raise Forbidden(f"not assigned to deployment {deployment_id}")


def _split(value: Any) -> list[str]:
    """Cognito groups arrive as a list (verified locally) or a string (API Gateway context)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.strip("[]").replace(",", " ").split() if v]
    return [str(v) for v in value]


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    sub = str(claims.get("sub") or "")
    if not sub:
        raise Unauthenticated("token has no subject")
    roles = frozenset(r for r in _split(claims.get("cognito:groups")) if r in ROLES)
    return Principal(
        sub=sub,
        roles=roles,
        deployments=frozenset(_split(claims.get("custom:deployments"))),
        camera=claims.get("custom:camera") or None,
    )


def issue_local_token(
    secret: str,
    sub: str,
    roles: Iterable[str],
    deployments: Iterable[str] = (),
    camera: str | None = None,
    ttl_s: int = 3600,
    now: float | None = None,
) -> str:
    """A token shaped like a Cognito ID token, for the local stack, tests and the demo."""
    now = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "token_use": "id",
        "iat": int(now),
        "exp": int(now + ttl_s),
        "jti": uuid.uuid4().hex,
        "cognito:groups": sorted(roles),
        "custom:deployments": ",".join(sorted(deployments)),
    }
    if camera:
        claims["custom:camera"] = camera
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_local_token(token: str, secret: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            token, secret, algorithms=["HS256"], audience=LOCAL_AUDIENCE, issuer=LOCAL_ISSUER,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None


def authenticate(
    headers: Mapping[str, str], context: Mapping[str, Any] | None, local_secret: str
) -> Principal:
    claims = ((context or {}).get("authorizer") or {}).get("claims")
    if claims:
        return principal_from_claims(claims)
    if not local_secret:
        raise Unauthenticated("no verified identity")
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing bearer token")
    return principal_from_claims(verify_local_token(token.strip(), local_secret))
