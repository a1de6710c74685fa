"""DynamoDB tables (pynamodb). With store/layout.py, the only code that knows the storage layout.

Table names carry the stage prefix, so model classes are built per Settings by `tables()`.
Everything about a person lives in Subject (watchlist members only) and Alert (matches only):
no table has a row for a face that did not match. CameraTracks holds, for a minute, the geometry
of the tracks a camera's next batch continues (ingest/continuity.py: no embedding, no pixels);
AppliedBatch the ids of the batches applied (object hashes).
A Deployment's `lookalikes` repeats, for its false alerts, fields of their Alert rows
(ops/lookalikes.py, docs/privacy.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pynamodb.connection.base
from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.clients import botocore_session, credential_kwargs, endpoint_url
from chalicelib.settings import Settings

# pynamodb makes a botocore session for every connection, one per model class, so each table
# parsed DynamoDB's API model again (~0.1 CPU-s each on a cold worker). pynamodb has no setting
# for the session: its module-level factory is pointed at the process's shared one.
pynamodb.connection.base.get_session = botocore_session  # type: ignore[assignment]


def utcnow() -> datetime:
    return datetime.now(UTC)


class VectorAttribute(BinaryAttribute):
    """A float32 vector stored as raw little-endian bytes (512 bytes for 128-d)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(legacy_encoding=False, **kwargs)

    def serialize(self, value: np.ndarray) -> bytes:  # type: ignore[override]
        return super().serialize(np.asarray(value, dtype="<f4").tobytes())

    def deserialize(self, value: Any) -> np.ndarray:  # type: ignore[override]
        return np.frombuffer(super().deserialize(value), dtype="<f4").copy()


class _Base(Model):
    class Meta:
        abstract = True


# The retention sweep finds what it has to do through sparse indexes: an item carries `sweep`
# only while the sweep may have something to do with it (a deployment not yet closed, a list
# not yet bound, an alert whose crop is kept, any sighting or track state), so each run reads
# what is open or due, never the history (ops/retention.py). One partition per index: a few
# writes a second at most, far under its limits.
SWEEP_INDEX = "sweep-due"


def _sweep_index(name: str, range_attr: Any, keys_only: bool = False) -> Any:
    meta = type("Meta", (), {"index_name": SWEEP_INDEX, "read_capacity_units": 1,
                             "write_capacity_units": 1,
                             "projection": KeysOnlyProjection() if keys_only
                             else AllProjection()})
    return type(name, (GlobalSecondaryIndex,), {
        "Meta": meta, "sweep": UnicodeAttribute(hash_key=True), range_attr[0]: range_attr[1]})


class WatchlistBase(_Base):
    """A watchlist: built for one deployment; version bumps whenever its subjects change."""

    watchlist_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    deployment_id = UnicodeAttribute(null=True)
    model_id = UnicodeAttribute()
    version = NumberAttribute(default=0)
    status = UnicodeAttribute(default="draft")  # draft -> authorised -> active -> destroyed
    created_at = UTCDateTimeAttribute(default=utcnow)
    created_by = UnicodeAttribute(default="system")
    authorised_by = UnicodeAttribute(null=True)
    authorised_at = UTCDateTimeAttribute(null=True)
    destroyed_at = UTCDateTimeAttribute(null=True)
    # The packed templates the worker loads (matching/snapshot.py): where, which version, sha256.
    snapshot_key = UnicodeAttribute(null=True)
    snapshot_version = NumberAttribute(null=True)
    snapshot_sha256 = UnicodeAttribute(null=True)
    # Ids of subjects taken off the list (no biometric data): a retried removal finishes.
    removed_subjects = UnicodeSetAttribute(null=True)
    sweep = UnicodeAttribute(null=True)  # "unbound" until a deployment binds it or it is destroyed
    due = _sweep_index("WatchlistsDue", ("created_at", UTCDateTimeAttribute(range_key=True)))()


class SubjectBase(_Base):
    """The vector table: one row per watchlist subject, its template embedding and model id."""

    watchlist_id = UnicodeAttribute(hash_key=True)
    subject_id = UnicodeAttribute(range_key=True)
    display_name = UnicodeAttribute()
    model_id = UnicodeAttribute()
    embedding = VectorAttribute()
    n_images = NumberAttribute(default=1)
    image_quality = ListAttribute(of=NumberAttribute, default=list)
    # Mean cosine between the subject's own references (no embedding): what the watchlist
    # summary's expected TPIR reads (matching/expected_tpir.py).
    reference_agreement = NumberAttribute(null=True)
    reference_key = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(default=utcnow)


class DeploymentBase(_Base):
    deployment_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    watchlist_id = UnicodeAttribute(null=True)
    place = UnicodeAttribute(null=True)
    cameras = ListAttribute(of=UnicodeAttribute, default=list)
    status = UnicodeAttribute(default="active")  # active -> ended
    threshold = NumberAttribute(null=True)
    target_fpir = NumberAttribute(null=True)
    starts_at = UTCDateTimeAttribute(null=True)
    ends_at = UTCDateTimeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    authorising_officer = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(default="system")
    watchlist_size = NumberAttribute(null=True)
    created_at = UTCDateTimeAttribute(default=utcnow)
    # Counts only: how many frames and faces were looked at, never what was in them.
    batches = NumberAttribute(default=0)
    frames = NumberAttribute(default=0)
    faces_seen = NumberAttribute(default=0)
    tracks = NumberAttribute(default=0)  # tracks per batch (a passing counts in each batch)
    passings = NumberAttribute(default=0)  # people passing: tracks continued across batches
    faces_embedded = NumberAttribute(default=0)
    decisions = NumberAttribute(default=0)
    frames_skipped = NumberAttribute(default=0)
    faces_rejected = NumberAttribute(default=0)
    # Frames that reached the worker, per camera (ops/camera_health.py): counted with the
    # counters above, in the same write. Each camera adds to its own key only.
    camera_frames = MapAttribute(default=dict)
    # Alerts an officer adjudicated false, while they and the deployment last: alert id ->
    # {subject_id, score, until}. What those alerts keep, no more (ops/lookalikes.py).
    lookalikes = MapAttribute(null=True)
    sweep = UnicodeAttribute(null=True)  # "open" until ended, its watchlist destroyed
    due = _sweep_index("DeploymentsDue", ("created_at", UTCDateTimeAttribute(range_key=True)))()


class DeviceBase(_Base):
    """An officer's phone registered on a deployment: where its alerts are pushed."""

    deployment_id = UnicodeAttribute(hash_key=True)
    device_id = UnicodeAttribute(range_key=True)
    officer_id = UnicodeAttribute()
    platform = UnicodeAttribute()
    endpoint_arn = UnicodeAttribute()
    registered_at = UTCDateTimeAttribute(default=utcnow)


class AlertsByDeployment(GlobalSecondaryIndex["AlertBase"]):
    class Meta:
        index_name = "by-deployment"
        projection = AllProjection()
        read_capacity_units = 1
        write_capacity_units = 1

    deployment_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class BoxAttribute(MapAttribute):
    x1 = NumberAttribute()
    y1 = NumberAttribute()
    x2 = NumberAttribute()
    y2 = NumberAttribute()


class AlertBase(_Base):
    """A possible match awaiting an officer's adjudication. Id is deterministic (idempotency)."""

    alert_id = UnicodeAttribute(hash_key=True)
    deployment_id = UnicodeAttribute()
    camera_id = UnicodeAttribute()
    watchlist_id = UnicodeAttribute()
    subject_id = UnicodeAttribute()
    display_name = UnicodeAttribute()
    score = NumberAttribute()
    threshold = NumberAttribute()
    target_fpir = NumberAttribute(null=True)
    model_id = UnicodeAttribute()
    batch_sequence = NumberAttribute()
    frame_index = NumberAttribute()
    box = BoxAttribute()
    captured_at = UTCDateTimeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)
    crop_key = UnicodeAttribute()
    track_faces = NumberAttribute(default=1)
    # South Wales Police glossary: alert -> true_alert | false_alert (an officer's adjudication),
    # then the outcome of the engagement.
    status = UnicodeAttribute(default="alert")
    adjudicated_by = UnicodeAttribute(null=True)
    adjudicated_at = UTCDateTimeAttribute(null=True)
    adjudication_note = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute(null=True)
    outcome_by = UnicodeAttribute(null=True)
    outcome_at = UTCDateTimeAttribute(null=True)
    crop_deleted_at = UTCDateTimeAttribute(null=True)
    # The false alert this match resembles (same subject, score not clearly higher): flagged
    # to officers as the look-alike they ruled out, not pushed (ops/lookalikes.py).
    lookalike_of = UnicodeAttribute(null=True)
    notified_at = UTCDateTimeAttribute(null=True)
    # target (device id, or "topic") -> {state: sending|sent|disabled, at, message_id}
    deliveries = MapAttribute(null=True)
    expires_at = UTCDateTimeAttribute()
    by_deployment = AlertsByDeployment()
    sweep = UnicodeAttribute(null=True)  # "crop" while the crop is kept
    due = _sweep_index("AlertsDue", ("expires_at", UTCDateTimeAttribute(range_key=True)))()


class SightingBase(_Base):
    """A watchlist subject's recent passings in front of one camera, each with its alert: later
    batches of a passing continue its alert instead of raising another (alerts/sightings.py).
    Holds matched subjects only."""

    camera_key = UnicodeAttribute(hash_key=True)  # <deployment>#<camera>
    subject_id = UnicodeAttribute(range_key=True)
    passings = UnicodeAttribute(default="[]")  # [{alert_id, first, last}], capture times
    version = VersionAttribute()
    expires_at = TTLAttribute()
    sweep = UnicodeAttribute(default="due")  # every item: deleted once expired
    due = _sweep_index("SightingsDue", ("expires_at", TTLAttribute(range_key=True)))()


class CameraTracksBase(_Base):
    """One camera's open tracks (ingest/continuity.py), for its next batch. Optimistic
    concurrency on `version`; expires a minute after the last write (the worker ignores an
    expired item and the retention sweep deletes it: TTL purges late)."""

    camera_key = UnicodeAttribute(hash_key=True)  # <deployment>#<camera>
    version = NumberAttribute(default=0)
    state = UnicodeAttribute()  # CameraTracks.to_json(): geometry, times, quality, flags
    written_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
    sweep = UnicodeAttribute(default="due")  # every item: deleted once expired
    due = _sweep_index("TracksDue", ("expires_at", TTLAttribute(range_key=True)), True)()


class AppliedBatchBase(_Base):
    """A frame batch whose decisions and counts have landed, by its id (a hash of the object
    key and ETag: about an object, not a person). Put in the transaction that writes the
    camera's track state, on condition that it is not there: a later delivery of the same batch
    finds it and neither decides nor counts again. Kept APPLIED_TTL_S (ingest/continuity.py),
    longer than any batch can come back; deleted by DynamoDB's TTL (nothing in it is about
    anyone, so the sweep need not read it)."""

    TTL = "expires_at"  # the table's TTL attribute (infra/spec.py, local/resources.py)
    camera_key = UnicodeAttribute(hash_key=True)  # <deployment>#<camera>
    batch_id = UnicodeAttribute(range_key=True)
    expires_at = TTLAttribute()


class CameraBase(_Base):
    """One camera of a deployment, as its gateway last reported it (ops/camera_health.py):
    counts, times and ids only. A row of its own, so that heartbeats never grow the deployment
    row every frame batch rewrites."""

    deployment_id = UnicodeAttribute(hash_key=True)
    camera_id = UnicodeAttribute(range_key=True)
    health = UnicodeAttribute(null=True)  # the folded heartbeats (JSON)
    dark_pushed_for = UnicodeAttribute(null=True)  # the dark spell last pushed (its start)
    updated_at = UTCDateTimeAttribute(default=utcnow)


class AuditBase(_Base):
    """Append-only audit trail (written with attribute_not_exists; no code path updates it)."""

    scope = UnicodeAttribute(hash_key=True)  # deployment id, or watchlist#<id> before one
    entry = UnicodeAttribute(range_key=True)  # <ISO time>#<random>: ordered by time
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    target = UnicodeAttribute()
    details = MapAttribute(default=dict)
    at = UTCDateTimeAttribute(default=utcnow)


@dataclass(frozen=True)
class Tables:
    Watchlist: type[WatchlistBase]
    Subject: type[SubjectBase]
    Deployment: type[DeploymentBase]
    Device: type[DeviceBase]
    Alert: type[AlertBase]
    Sighting: type[SightingBase]
    CameraTracks: type[CameraTracksBase]
    Audit: type[AuditBase]
    Camera: type[CameraBase]
    AppliedBatch: type[AppliedBatchBase]

    def all(self) -> list[type[Model]]:
        return [self.Watchlist, self.Subject, self.Deployment, self.Device, self.Alert,
                self.Sighting, self.CameraTracks, self.Audit, self.Camera, self.AppliedBatch]


def _bind(base: type[Model], table_name: str, settings: Settings) -> type[Model]:
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": settings.region,
            "host": endpoint_url("dynamodb", settings),
            "billing_mode": "PAY_PER_REQUEST",
            **credential_kwargs(settings.credentials),
        },
    )
    return type(base.__name__.removesuffix("Base"), (base,), {"Meta": meta})


@functools.lru_cache(maxsize=8)
def tables(settings: Settings) -> Tables:
    p = settings.table_prefix
    return Tables(
        Watchlist=_bind(WatchlistBase, f"{p}-watchlists", settings),  # type: ignore[arg-type]
        Subject=_bind(SubjectBase, f"{p}-subjects", settings),  # type: ignore[arg-type]
        Deployment=_bind(DeploymentBase, f"{p}-deployments", settings),  # type: ignore[arg-type]
        Device=_bind(DeviceBase, f"{p}-devices", settings),  # type: ignore[arg-type]
        Alert=_bind(AlertBase, f"{p}-alerts", settings),  # type: ignore[arg-type]
        Sighting=_bind(SightingBase, f"{p}-sightings", settings),  # type: ignore[arg-type]
        CameraTracks=_bind(CameraTracksBase, f"{p}-tracks", settings),  # type: ignore[arg-type]
        Audit=_bind(AuditBase, f"{p}-audit", settings),  # type: ignore[arg-type]
        Camera=_bind(CameraBase, f"{p}-cameras", settings),  # type: ignore[arg-type]
        AppliedBatch=_bind(AppliedBatchBase, f"{p}-applied",  # type: ignore[arg-type]
                           settings),
    )


@functools.lru_cache(maxsize=4)
def _connection(region: str, host: str | None, credentials: tuple[str, ...]) -> Connection:
    """One per container: a connection builds a botocore client, which is costly."""
    return Connection(region=region, host=host, **credential_kwargs(credentials))


def connection_of(model: type[Model]) -> Connection:
    """The connection a transaction over this model's tables goes through."""
    meta = model.Meta
    keys = (meta.aws_access_key_id, meta.aws_secret_access_key, meta.aws_session_token)
    return _connection(meta.region, meta.host, tuple(k for k in keys if k))


def idempotency_table_name(settings: Settings) -> str:
    return f"{settings.table_prefix}-idempotency"
