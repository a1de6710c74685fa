"""Reading back what the local AWS holds: what a phone received, what a bucket or table keeps."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Push:
    endpoint_arn: str
    officer: str
    message_id: str
    # The alert's data: on moto the GCM data block of the whole payload whatever the phone's
    # platform; on LocalStack the block of the phone's own platform (GCM data, APNs lfr).
    data: dict[str, Any]


@functools.lru_cache(maxsize=8)
def is_localstack(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_localstack/health", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.HTTPError, urllib.error.URLError):
        return False


def delivered_pushes(endpoint_url: str, endpoint_arns: Iterable[str] | None = None) -> list[Push]:
    """Every push SNS at `endpoint_url` delivered to a platform endpoint (a phone), or to the
    given ones: LocalStack's /_aws/sns/platform-endpoint-messages; on moto, the route our own
    moto server adds (local/moto_app.py), whose cost does not grow with the server's state, or
    /moto-api/data.json on a plain moto server."""
    wanted = None if endpoint_arns is None else set(endpoint_arns)
    if wanted is not None and not wanted:
        return []
    if is_localstack(endpoint_url):
        pushes = _localstack_pushes(endpoint_url)
    else:
        eps = _moto_endpoints(endpoint_url, wanted)
        pushes = [push for ep in (eps if eps is not None else _moto_dump(endpoint_url))
                  for push in _moto_pushes(ep)]
    return [p for p in pushes if wanted is None or p.endpoint_arn in wanted]


def _moto_endpoints(endpoint_url: str,
                    arns: Iterable[str] | None) -> list[dict[str, Any]] | None:
    """The platform endpoints (all, or the named ones) as moto holds them; None from a plain
    moto server, which has no such route."""
    from chalicelib.local.moto_app import PUSHES_PATH

    query = "" if arns is None else urllib.parse.urlencode([("arn", a) for a in sorted(arns)])
    try:
        with urllib.request.urlopen(f"{endpoint_url}{PUSHES_PATH}?{query}", timeout=30) as resp:
            return json.load(resp)["endpoints"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _moto_dump(endpoint_url: str) -> list[dict[str, Any]]:
    """Every platform endpoint, from a dump of every model moto holds: its cost grows with the
    server's whole state (10 s was seen late in a long run)."""
    with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=90) as resp:
        state = json.load(resp)
    return state.get("sns", {}).get("PlatformEndpoint", [])


def _moto_pushes(ep: dict[str, Any]) -> list[Push]:
    out = []
    for message_id, raw in (ep.get("messages") or {}).items():
        message = json.loads(raw)
        gcm = json.loads(message.get("GCM", "{}"))
        # The officer set after creation lives in the endpoint's attributes.
        officer = (ep.get("attributes") or {}).get("CustomUserData") or \
            ep.get("custom_user_data", "")
        out.append(Push(ep["arn"], officer, message_id, gcm.get("data", {})))
    return out


def _localstack_pushes(endpoint_url: str) -> list[Push]:
    """LocalStack keeps, per endpoint, what a phone would get: the Message for its platform
    (the GCM part of a MessageStructure=json publish). The officer is the endpoint's
    CustomUserData, read through the API."""
    from chalicelib import clients
    from chalicelib.settings import Settings

    s = Settings.from_env()
    sns = clients.client("sns", s)
    account = clients.client("sts", s).get_caller_identity()["Account"]
    query = urllib.parse.urlencode({"accountId": account, "region": s.region})
    url = f"{endpoint_url}/_aws/sns/platform-endpoint-messages?{query}"
    with urllib.request.urlopen(url, timeout=90) as resp:
        state = json.load(resp)
    out = []
    for arn, messages in (state.get("platform_endpoint_messages") or {}).items():
        try:
            attrs = sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
        except sns.exceptions.NotFoundException:
            attrs = {}
        for m in messages:
            # The platform's part of the message, JSON-encoded once more by LocalStack.
            body: Any = m.get("Message") or "{}"
            while isinstance(body, str):
                body = json.loads(body)
            # Each platform gets its own part (alerts/notify.py push_payload): FCM's data block,
            # APNs' "lfr" beside "aps".
            data = body.get("lfr" if ":endpoint/APNS" in arn else "data", {})
            out.append(Push(arn, attrs.get("CustomUserData", ""), m.get("MessageId", ""), data))
    return out


def all_keys(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]
