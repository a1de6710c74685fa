"""Resource names from Settings, resolved to the URLs and ARNs the APIs want, once per container."""

from __future__ import annotations

import functools

from chalicelib.clients import client
from chalicelib.settings import Settings


def dlq_name(queue: str) -> str:
    """Each queue's dead-letter queue (local/resources.py and infra/ create them so)."""
    return f"{queue}-dlq"


@functools.lru_cache(maxsize=32)
def queue_url(settings: Settings, name: str) -> str:
    return client("sqs", settings).get_queue_url(QueueName=name)["QueueUrl"]


@functools.lru_cache(maxsize=8)
def account_id(settings: Settings) -> str:
    return client("sts", settings).get_caller_identity()["Account"]


def topic_arn(settings: Settings) -> str:
    return f"arn:aws:sns:{settings.region}:{account_id(settings)}:{settings.deployment_topic}"


def platform_app_arn(settings: Settings, platform: str) -> str:
    """Platform applications are named <push_platform_app>-<gcm|apns>."""
    return (
        f"arn:aws:sns:{settings.region}:{account_id(settings)}:app/{platform.upper()}/"
        f"{settings.push_platform_app}-{platform.lower()}"
    )


def reset() -> None:
    queue_url.cache_clear()
    account_id.cache_clear()

