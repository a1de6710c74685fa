"""The one place that creates boto3 clients: lazily, once per container, honouring the endpoint.

boto3 honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> by itself; passing the endpoint from
Settings explicitly keeps tests that build their own Settings independent of the process
environment, and resolves it by boto3's own rule (endpoint_url below).
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore import utils as botocore_utils
from botocore.config import Config

from chalicelib.settings import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


@functools.lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=_RETRIES
    )


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
    return _client(service, settings.region, endpoint_url(service, settings))


def reset() -> None:
    """Forget cached clients (tests that start a new local stack on another port)."""
    _client.cache_clear()
