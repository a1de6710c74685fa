"""S3 ObjectCreated notifications as the frames queue carries them: which objects one names.

Read by the worker (ingest/worker.py), and by the dead-letter listing (ops/dlq.py) to show
which batch objects a parked message names.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus


class NotificationError(ValueError):
    """A frames-queue message that is not an S3 notification: nothing in it can be processed."""


def s3_objects(body: str) -> list[dict[str, str]]:
    """The (bucket, key, etag, event) of each ObjectCreated record in an S3 notification body.

    Raises NotificationError, with the reason, for a body that is not one."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise NotificationError(f"message body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise NotificationError(f"message body is a JSON {type(message).__name__}, not an object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records", [])
    if not isinstance(records, list):
        raise NotificationError("Records is not a list")
    out = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict) or \
                not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        try:
            s3 = rec["s3"]
            out.append(
                {
                    "bucket": str(s3["bucket"]["name"]),
                    "key": unquote_plus(str(s3["object"]["key"])),  # keys arrive URL-encoded
                    "etag": str(s3["object"].get("eTag", "")),
                    # Names the upload, not only the bytes: a notification delivered twice is
                    # one event, the same bytes uploaded again (a gateway's retry) another.
                    "event": f"{rec.get('eventTime', '')}|{s3['object'].get('sequencer', '')}",
                }
            )
        except (KeyError, TypeError, AttributeError):
            raise NotificationError(f"record {n} has no s3 bucket name and object key") from None
    return out
