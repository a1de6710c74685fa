"""A watchlist's authorised templates, packed in one object the worker reads at cold start.

Reading 17,000 subject rows from DynamoDB costs a worker ~0.5 CPU-ms each (8-9 CPU-s per cold
start, issue 12); one packed object costs a GetObject, a sha256 and an `np.load`. The format is
numpy's own `.npz` (read with allow_pickle=False: nothing in it can run code), members:

  meta       0-d str: JSON {format, watchlist_id, version, model_id, count, dim}
  ids        str [count]            subject ids
  names      str [count]            display names (matched subjects' names go on alerts)
  templates  float32 [count, dim]   the template embeddings, as stored on the subject rows

Integrity: the sha256 of the whole object is written on the watchlist row, with the watchlist
version the snapshot holds, in the same update that authorises the list. A snapshot is used
only if its bytes hash to that digest (else: tampered or corrupt), its meta names the same
watchlist, version and model (else: stale, or from another list), and its arrays agree. Anything
else is refused, with the reason, and the caller reads the table instead: a snapshot can make a
cold start fast, never make a decision on templates that are not the authorised ones.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

FORMAT = "lfr-watchlist-snapshot/1"
_MEMBERS = {"meta", "ids", "names", "templates"}


class SnapshotRefused(ValueError):
    """This snapshot must not be used; `reason` is one word for metrics and logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"watchlist snapshot refused ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Snapshot:
    watchlist_id: str
    version: int
    model_id: str
    subject_ids: list[str]
    names: list[str]
    templates: np.ndarray  # float32 [count, dim]


@dataclass(frozen=True)
class Expected:
    """What the watchlist row says the snapshot must be."""

    watchlist_id: str
    version: int
    model_id: str
    sha256: str


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(snap: Snapshot) -> bytes:
    templates = np.ascontiguousarray(snap.templates, dtype=np.float32)
    if templates.ndim != 2 or len({len(templates), len(snap.subject_ids), len(snap.names)}) != 1:
        raise ValueError("a snapshot needs one id, one name and one template per subject")
    meta = {"format": FORMAT, "watchlist_id": snap.watchlist_id, "version": int(snap.version),
            "model_id": snap.model_id, "count": int(templates.shape[0]),
            "dim": int(templates.shape[1])}
    buf = io.BytesIO()
    # str arrays (fixed-width UCS4), never object arrays: loading them needs no pickle.
    np.savez(buf, meta=np.array(json.dumps(meta, sort_keys=True)),
             ids=np.array(snap.subject_ids, dtype=str), names=np.array(snap.names, dtype=str),
             templates=templates)
    return buf.getvalue()


def unpack(data: bytes, expected: Expected) -> Snapshot:
    """The snapshot, if it is exactly what the watchlist row authorised; else SnapshotRefused."""
    if digest(data) != expected.sha256:
        raise SnapshotRefused("digest", "its sha256 is not the one recorded at authorisation "
                                        "(altered or corrupt)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if set(z.files) != _MEMBERS:
                raise SnapshotRefused("format", f"members {sorted(z.files)}")
            meta = json.loads(str(z["meta"]))
            ids, names, templates = z["ids"], z["names"], z["templates"]
    except SnapshotRefused:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:  # JSONDecodeError is a ValueError
        raise SnapshotRefused("format", f"not a readable snapshot: {exc}") from None
    if meta.get("format") != FORMAT:
        raise SnapshotRefused("format", f"format {meta.get('format')!r}, expected {FORMAT}")
    for field, want in (("watchlist_id", expected.watchlist_id), ("version", expected.version),
                        ("model_id", expected.model_id)):
        if meta.get(field) != want:
            raise SnapshotRefused("stale", f"{field} {meta.get(field)!r}, the watchlist's is "
                                           f"{want!r}")
    n, dim = meta.get("count"), meta.get("dim")
    if (templates.dtype != np.float32 or templates.shape != (n, dim) or ids.shape != (n,)
            or names.shape != (n,) or ids.dtype.kind != "U" or names.dtype.kind != "U"):
        raise SnapshotRefused("format", "its arrays do not match its meta")
    if not np.isfinite(templates).all():
        raise SnapshotRefused("format", "non-finite template values")
    return Snapshot(expected.watchlist_id, expected.version, expected.model_id,
                    ids.tolist(), names.tolist(), templates)
