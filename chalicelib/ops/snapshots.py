"""Watchlist snapshots at the AWS edge: written at authorisation (and whenever an authorised
list changes), read by the worker at cold start, destroyed with the list.

The pure format and its checks are in matching/snapshot.py. The object lives in the evidence
bucket (encrypted at rest with the stack's key, like the reference images) under
snapshots/<watchlist>/; the watchlist row records its key, version and sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from chalicelib.matching.snapshot import Expected, Snapshot, SnapshotRefused, digest, pack, unpack
from chalicelib.store import layout
from chalicelib.store.tables import Tables

DIM = 128


@dataclass(frozen=True)
class Written:
    key: str
    version: int
    sha256: str
    count: int


def subjects_of(tables: Tables, watchlist_id: str, model_id: str, version: int = 0) -> Snapshot:
    """Every template of the list made by `model_id`, read from the subject rows (only the
    attributes a search needs), labelled with the list's `version` as the caller read it."""
    ids, names, vectors = [], [], []
    for subject in tables.Subject.query(
            watchlist_id, consistent_read=True,
            attributes_to_get=["subject_id", "display_name", "model_id", "embedding"]):
        if subject.model_id != model_id:
            continue  # never compare embeddings of different models
        ids.append(subject.subject_id)
        names.append(subject.display_name)
        vectors.append(subject.embedding)
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, DIM), np.float32)
    return Snapshot(watchlist_id, version, model_id, ids, names, matrix)


def store(s3: Any, evidence_bucket: str, snap: Snapshot) -> Written:
    """Pack and store `snap`. The caller records the result on the watchlist row on condition
    that the version is still `snap.version`."""
    data = pack(snap)
    key = layout.snapshot_key(snap.watchlist_id, snap.version)
    s3.put_object(Bucket=evidence_bucket, Key=key, Body=data,
                  ContentType="application/octet-stream")
    return Written(key, snap.version, digest(data), len(snap.subject_ids))


def record_actions(W: Any, written: Written) -> list[Any]:
    """The watchlist-row update that makes `written` the list's snapshot."""
    return [W.snapshot_key.set(written.key), W.snapshot_version.set(written.version),
            W.snapshot_sha256.set(written.sha256)]


def clear_actions(W: Any) -> list[Any]:
    return [W.snapshot_key.remove(), W.snapshot_version.remove(), W.snapshot_sha256.remove()]


def load(s3: Any, evidence_bucket: str, watchlist: Any) -> Snapshot:
    """The snapshot the watchlist row names, checked (matching/snapshot.py); else
    SnapshotRefused with the reason: none, stale, missing, unavailable, digest, format."""
    if not watchlist.snapshot_key or not watchlist.snapshot_sha256:
        raise SnapshotRefused("none", f"watchlist {watchlist.watchlist_id} has no snapshot")
    version = int(watchlist.version or 0)
    if watchlist.snapshot_version is None or int(watchlist.snapshot_version) != version:
        raise SnapshotRefused("stale", f"snapshot of version {watchlist.snapshot_version}, the "
                                       f"watchlist is at {version}")
    try:
        data = s3.get_object(Bucket=evidence_bucket, Key=watchlist.snapshot_key)["Body"].read()
    except ClientError as exc:
        # The rows are the authority and the snapshot only a faster copy: any failure to get
        # it (gone, throttled, denied) means the table decides, not that the batch fails.
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404"):
            raise SnapshotRefused("missing", f"{watchlist.snapshot_key} is not in the "
                                             "evidence bucket") from None
        raise SnapshotRefused("unavailable", f"GetObject failed: {code}") from None
    return unpack(data, Expected(watchlist.watchlist_id, version, watchlist.model_id,
                                 watchlist.snapshot_sha256))


def delete_prefix(s3: Any, bucket: str, prefix: str, keep: str | None = None) -> int:
    """Delete every object under `prefix` but `keep`; how many."""
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"] != keep]
        if keys:
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            if resp.get("Errors"):
                raise RuntimeError(f"could not delete {len(resp['Errors'])} objects under "
                                   f"{prefix}: {resp['Errors'][0].get('Code')}")
            n += len(keys)
    return n
