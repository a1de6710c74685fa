"""S3 key scheme. With store/tables.py, the only code that knows where things are kept.

frames bucket:   frames/<deployment>/<camera>/<sequence:012d>.lfrb
                   one frame batch, deleted once processed
evidence bucket: crops/<deployment>/<alert_id>.jpg
                   matched face crop, expires (lifecycle rule and sweep)
                 references/<watchlist>/<subject_id>.jpg
                   watchlist reference image
                 snapshots/<watchlist>/v<version:09d>.npz
                   the watchlist's packed templates (matching/snapshot.py), destroyed with it
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FRAMES_PREFIX = "frames/"
ARCHIVE_PREFIX = "archive/"
CROPS_PREFIX = "crops/"
REFERENCES_PREFIX = "references/"
SNAPSHOTS_PREFIX = "snapshots/"
BATCH_SUFFIX = ".lfrb"

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
ID_PATTERN = re.compile(rf"^{_ID}$")
_BATCH_KEY = re.compile(rf"^frames/(?P<deployment>{_ID})/(?P<camera>{_ID})/(?P<name>[^/]+)$")


@dataclass(frozen=True)
class BatchKey:
    deployment_id: str
    camera_id: str
    name: str


def valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def camera_prefix(deployment_id: str, camera_id: str) -> str:
    return f"{FRAMES_PREFIX}{deployment_id}/{camera_id}/"


def batch_key(deployment_id: str, camera_id: str, sequence: int) -> str:
    return f"{camera_prefix(deployment_id, camera_id)}{sequence:012d}{BATCH_SUFFIX}"


def parse_batch_key(key: str) -> BatchKey | None:
    m = _BATCH_KEY.match(key)
    if not m:
        return None
    return BatchKey(m["deployment"], m["camera"], m["name"])


def crop_key(deployment_id: str, alert_id: str) -> str:
    return f"{CROPS_PREFIX}{deployment_id}/{alert_id}.jpg"


def reference_key(watchlist_id: str, subject_id: str) -> str:
    return f"{REFERENCES_PREFIX}{watchlist_id}/{subject_id}.jpg"


def reference_prefix(watchlist_id: str) -> str:
    return f"{REFERENCES_PREFIX}{watchlist_id}/"


def snapshot_prefix(watchlist_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{watchlist_id}/"


def snapshot_key(watchlist_id: str, version: int) -> str:
    return f"{snapshot_prefix(watchlist_id)}v{int(version):09d}.npz"
