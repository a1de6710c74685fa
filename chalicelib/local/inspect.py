"""Reading back what the local AWS holds: what a phone received, what a bucket or table keeps."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Push:
    endpoint_arn: str
    officer: str
    message_id: str
    data: dict[str, Any]  # the GCM data block of the push payload


def delivered_pushes(endpoint_url: str) -> list[Push]:
    """Every push moto server delivered to a platform endpoint (a phone), from /moto-api."""
    # data.json dumps every model moto holds, so it slows as a long session (the whole test
    # suite on a shared 2-core machine) fills it: 10 s was seen to run out.
    with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=90) as resp:
        state = json.load(resp)
    out = []
    for ep in state.get("sns", {}).get("PlatformEndpoint", []):
        for message_id, raw in (ep.get("messages") or {}).items():
            message = json.loads(raw)
            gcm = json.loads(message.get("GCM", "{}"))
            # The officer set after creation lives in the endpoint's attributes.
            officer = (ep.get("attributes") or {}).get("CustomUserData") or \
                ep.get("custom_user_data", "")
            out.append(Push(ep["arn"], officer, message_id,
                            gcm.get("data", {})))
    return out


def all_keys(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def scan_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page.get("Items", [])]
