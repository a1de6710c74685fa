"""The one place that creates boto3 clients: lazily, once per container, honouring the endpoint.

boto3 honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> by itself; passing the endpoint from
Settings explicitly keeps tests that build their own Settings independent of the process
environment, and resolves it by boto3's own rule (endpoint_url below).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
import botocore.session
from botocore import utils as botocore_utils
from botocore.config import Config

from chalicelib.settings import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


class _SharedSession(botocore.session.Session):
    """One botocore session per process, so each service's API model (JSON) is parsed once.

    A session per client parsed them again for every client: on a cold worker 8 clients spent
    0.64 CPU-s in json.loads (issue 12, benchmarks/cold_start.py). Sessions are not thread-safe,
    clients are: creation is serialised, use is not."""

    _lock = threading.RLock()

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super().create_client(*args, **kwargs)


@functools.lru_cache(maxsize=1)
def botocore_session() -> botocore.session.Session:
    return _SharedSession()


@functools.lru_cache(maxsize=1)
def _boto3_session() -> boto3.session.Session:
    return boto3.session.Session(botocore_session=botocore_session())


@functools.lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None,
            credentials: tuple[str, ...] = ()) -> Any:
    return _boto3_session().client(service, region_name=region, endpoint_url=endpoint_url,
                                   config=_RETRIES, **credential_kwargs(credentials))


def credential_kwargs(credentials: tuple[str, ...]) -> dict[str, str]:
    """Settings.credentials as a client's keyword arguments (none: boto3's own chain)."""
    names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    return dict(zip(names, credentials, strict=False))


def service_env_id(service: str) -> str:
    """The suffix of the service's AWS_ENDPOINT_URL_<...> variable, as botocore derives it from a
    client name (configprovider's _get_snake_case_service_id): cognito-idp ->
    COGNITO_IDENTITY_PROVIDER, events -> EVENTBRIDGE, dynamodb -> DYNAMODB."""
    name = botocore_utils.SERVICE_NAME_ALIASES.get(service, service)
    hyphenized = botocore_utils.CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(name, name)
    return hyphenized.replace("-", "_").upper()


def endpoint_url(service: str, settings: Settings) -> str | None:
    """The service's own endpoint if one is set, else the global one (None: AWS)."""
    own = dict(settings.service_endpoints).get(service_env_id(service))
    return own or settings.endpoint_url


def client(service: str, settings: Settings) -> Any:
    return _client(service, settings.region, endpoint_url(service, settings),
                   settings.credentials)


def reset() -> None:
    """Forget cached clients (tests that start a new local stack on another port)."""
    _client.cache_clear()
    _boto3_session.cache_clear()
    botocore_session.cache_clear()
