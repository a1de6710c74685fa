"""Where a camera's track state lives between its batches: one DynamoDB item per camera.

Batches of one camera may be processed at once (standard SQS, several Lambda instances): the
state is written with a version condition, and a writer that lost the race merges its state into
the one it finds (continuity.merge) and tries again. The deployment's counters are updated, and
the batch's id put (on condition that it is not there: store/tables.AppliedBatch), in the same
transaction, so a batch is counted exactly when its state lands: a later delivery that finds its
id neither decides nor counts again, for APPLIED_TTL_S, whether or not the camera went quiet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.ingest.continuity import APPLIED_TTL_S, TRACK_TTL_S, CameraTracks, merge
from chalicelib.store.tables import Tables, connection_of

_ATTEMPTS = 8


def tracks_from(item: Any | None, now: float) -> tuple[CameraTracks, int]:
    """The camera's state in a CameraTracks row (empty when none or expired), and its version."""
    if item is None:
        return CameraTracks(), 0
    version = int(item.version or 0)
    if item.expires_at is not None and item.expires_at.timestamp() < now:
        return CameraTracks(), version  # TTL deletes late: an expired state is never used
    return CameraTracks.from_json(item.state).pruned(now), version


class TrackStore(Protocol):
    def load(self, camera_key: str, now: float) -> tuple[CameraTracks, int]: ...

    def applied(self, camera_key: str, batch_id: str) -> bool: ...

    def save(self, camera_key: str, state: CameraTracks, version: int, now: float,
             deployment: Any = None, counters: list[Action] | None = None,
             batch_id: str = "") -> None: ...

    def record_applied(self, camera_key: str, batch_id: str, now: float, deployment: Any,
                       counters: list[Action]) -> None: ...


class DynamoTrackStore:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def load(self, camera_key: str, now: float) -> tuple[CameraTracks, int]:
        """The camera's state (empty when none or expired) and the version to write over."""
        CT = self.tables.CameraTracks
        try:
            item = CT.get(camera_key, consistent_read=True)
        except CT.DoesNotExist:
            item = None
        return tracks_from(item, now)

    def applied(self, camera_key: str, batch_id: str) -> bool:
        AB = self.tables.AppliedBatch
        # An id past its expiry that TTL has not purged yet still names a batch applied.
        try:
            AB.get(camera_key, batch_id, consistent_read=True)
        except AB.DoesNotExist:
            return False
        return True

    def save(self, camera_key: str, state: CameraTracks, version: int, now: float,
             deployment: Any = None, counters: list[Action] | None = None,
             batch_id: str = "") -> None:
        """`batch_id`: the batch this state comes from; when a concurrent delivery of the same
        batch has landed first, nothing is written (its tracks and counts are there)."""
        CT, AB = self.tables.CameraTracks, self.tables.AppliedBatch
        when = datetime.fromtimestamp(now, UTC)
        for _ in range(_ATTEMPTS):
            item = CT(camera_key, version=version + 1, state=state.pruned(now).to_json(),
                      written_at=when, expires_at=when + timedelta(seconds=TRACK_TTL_S))
            condition = CT.camera_key.does_not_exist() if version == 0 else \
                CT.version == version
            try:
                with TransactWrite(connection=connection_of(CT)) as tw:
                    tw.save(item, condition=condition)
                    if batch_id:
                        tw.save(AB(camera_key, batch_id,
                                   expires_at=when + timedelta(seconds=APPLIED_TTL_S)),
                                condition=AB.batch_id.does_not_exist())
                    if deployment is not None and counters:
                        tw.update(deployment, actions=counters)
                return
            except TransactWriteError as exc:
                failed = _failed_conditions(exc)
                if batch_id and 1 in failed:
                    return  # another delivery of this batch landed first: its state is there
                if 0 not in failed:
                    raise
            stored, version = self.load(camera_key, now)
            state = merge(stored, state)
        raise RuntimeError(f"camera state {camera_key} kept changing under {_ATTEMPTS} writes")


    def record_applied(self, camera_key: str, batch_id: str, now: float, deployment: Any,
                       counters: list[Action]) -> None:
        """Without continuity (no tracks kept): the batch's id and its counts, together or not
        at all; nothing when a concurrent delivery of the same batch landed first."""
        AB = self.tables.AppliedBatch
        when = datetime.fromtimestamp(now, UTC)
        try:
            with TransactWrite(connection=connection_of(AB)) as tw:
                tw.save(AB(camera_key, batch_id,
                           expires_at=when + timedelta(seconds=APPLIED_TTL_S)),
                        condition=AB.batch_id.does_not_exist())
                if counters:
                    tw.update(deployment, actions=counters)
        except TransactWriteError as exc:
            if 0 not in _failed_conditions(exc):
                raise


def _failed_conditions(exc: TransactWriteError) -> set[int]:
    """Which of the transaction's actions (by position) were cancelled by their condition."""
    return {i for i, r in enumerate(exc.cancellation_reasons or [])
            if r is not None and r.code == "ConditionalCheckFailed"}


class MemoryTrackStore:
    """For one process that sees all of a camera's batches in order (the archive batch job)."""

    def __init__(self) -> None:
        self._held: dict[str, CameraTracks] = {}
        self._applied: set[tuple[str, str]] = set()

    def load(self, camera_key: str, now: float) -> tuple[CameraTracks, int]:
        return self._held.get(camera_key, CameraTracks()).pruned(now), 0

    def applied(self, camera_key: str, batch_id: str) -> bool:
        return (camera_key, batch_id) in self._applied

    def save(self, camera_key: str, state: CameraTracks, version: int, now: float,
             deployment: Any = None, counters: list[Action] | None = None,
             batch_id: str = "") -> None:
        self._held[camera_key] = state
        if batch_id:
            self._applied.add((camera_key, batch_id))
        if deployment is not None and counters:
            deployment.update(actions=counters)

    def record_applied(self, camera_key: str, batch_id: str, now: float, deployment: Any,
                       counters: list[Action]) -> None:
        if (camera_key, batch_id) in self._applied:
            return
        self._applied.add((camera_key, batch_id))
        if counters:
            deployment.update(actions=counters)
