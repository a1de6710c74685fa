"""The one place that creates boto3 clients: lazily, once per container, honouring the endpoint.

boto3 honours AWS_ENDPOINT_URL by itself; passing Settings.endpoint_url explicitly keeps tests that
build their own Settings independent of the process environment.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
import botocore.session
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
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return _boto3_session().client(service, region_name=region, endpoint_url=endpoint_url,
                                   config=_RETRIES)


def client(service: str, settings: Settings) -> Any:
    return _client(service, settings.region, settings.endpoint_url)


def reset() -> None:
    """Forget cached clients (tests that start a new local stack on another port)."""
    _client.cache_clear()
    _boto3_session.cache_clear()
    botocore_session.cache_clear()
