"""The one place that creates boto3 clients: lazily, once per container, honouring the endpoint.

boto3 honours AWS_ENDPOINT_URL by itself; passing Settings.endpoint_url explicitly keeps tests that
build their own Settings independent of the process environment.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import Settings

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"})


@functools.lru_cache(maxsize=32)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=_RETRIES
    )


def client(service: str, settings: Settings) -> Any:
    return _client(service, settings.region, settings.endpoint_url)


def reset() -> None:
    """Forget cached clients (tests that start a new local stack on another port)."""
    _client.cache_clear()
