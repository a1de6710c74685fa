"""On AWS the camera's bearer token is a Cognito ID token that the gateway refreshes itself with
the camera's refresh token (gateway/cognito.py), against moto server's Cognito: the token is a
real ID token of the camera's user, it is refreshed when 80% of its life has passed and not
before, and a refresh token that is refused keeps the gateway asking (retryable), not dead."""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import pytest
import requests

from chalicelib.gateway.cognito import CognitoToken
from chalicelib.gateway.errors import Retryable


class _CountingSession(requests.Session):
    """Counts the refreshes the token asks Cognito for."""

    posts = 0

    def post(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.posts += 1
        return super().post(*args, **kwargs)


def test_the_gateway_keeps_the_cameras_cognito_token_fresh(local_stack: dict[str, Any],
                                                          tmp_path: Any) -> None:
    cognito = local_stack["rt"].client("cognito-idp")
    pool = cognito.create_user_pool(PoolName=f"cams-{uuid.uuid4().hex[:6]}")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="gateway",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    cognito.admin_create_user(UserPoolId=pool, Username="cam-1", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username="cam-1",
                                    Password="Camera-pass-1234", Permanent=True)
    first = cognito.admin_initiate_auth(
        UserPoolId=pool, ClientId=client, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "cam-1", "PASSWORD": "Camera-pass-1234"},
    )["AuthenticationResult"]
    refresh_file = tmp_path / "refresh"
    refresh_file.write_text(first["RefreshToken"])

    t = [0.0]
    http = _CountingSession()
    token = CognitoToken(str(local_stack["endpoint"]), client, refresh_file, http, lambda: t[0])
    got = token.read()
    claims = jwt.decode(got, options={"verify_signature": False})
    assert claims["token_use"] == "id" and claims["cognito:username"] == "cam-1"
    assert http.posts == 1
    t[0] = 0.79 * 3600
    assert token.read() == got and http.posts == 1  # not yet: 80% of its hour
    t[0] = 0.8 * 3600
    token.read()
    assert http.posts == 2

    refresh_file.write_text("a-revoked-refresh-token")
    t[0] = 2 * 3600
    with pytest.raises(Retryable, match="HTTP 400"):
        token.read()
