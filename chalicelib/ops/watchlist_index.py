"""The watchlist index a warm container holds: loaded from the list's snapshot when it is the
authorised one, else from the subject rows; reloaded only when the list's version changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.matching.index import ExactIndex
from chalicelib.matching.snapshot import SnapshotRefused
from chalicelib.ops import snapshots
from chalicelib.store.tables import Tables


@dataclass(frozen=True)
class Held:
    version: int
    index: ExactIndex
    names: dict[str, str]  # subject id -> display name
    source: str  # "snapshot" or "table"
    refused: str | None = None  # why the snapshot was not used (SnapshotRefused.reason)


def load_index(tables: Tables, s3: Any, evidence_bucket: str, watchlist: Any) -> Held:
    """The list's templates as of the row `watchlist` (read consistently by the caller)."""
    refused = None
    try:
        snap = snapshots.load(s3, evidence_bucket, watchlist)
    except SnapshotRefused as exc:
        refused = exc.reason
        snap = snapshots.subjects_of(tables, watchlist.watchlist_id, watchlist.model_id,
                                     int(watchlist.version or 0))
    index = ExactIndex(snap.subject_ids, snap.templates, watchlist.model_id)
    names = dict(zip(snap.subject_ids, snap.names, strict=True))
    return Held(int(watchlist.version or 0), index, names, "table" if refused else "snapshot",
                refused)


class IndexCache:
    """One index per watchlist per warm container.

    With the version the caller has read (the worker's BatchGetItem), a current index costs no
    request; a reload is one GetItem of the row, then the snapshot (one GetObject) or a Query
    of the subjects."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}

    def held(self, watchlist_id: str) -> Held | None:
        return self._held.get(watchlist_id)

    def get(self, tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str,
            version: int | None = None, on_load: Callable[[Held], None] | None = None) -> Held:
        held = self._held.get(watchlist_id)
        if held is not None and version is not None and held.version == version:
            return held
        row = tables.Watchlist.get(watchlist_id, consistent_read=True)
        if held is not None and held.version == int(row.version or 0):
            return held
        held = load_index(tables, s3, evidence_bucket, row)
        self._held[watchlist_id] = held
        if on_load is not None:
            on_load(held)
        return held
