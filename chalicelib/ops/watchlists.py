"""Watchlists: lifecycle, enrollment into the vector table, and the per-container index cache.

draft (subjects added, each with the source of its image and the reason for inclusion)
  -> authorised (by an operator other than its author: Bridges v SWP asked who goes on a list)
  -> active (bound to one deployment) -> destroyed (subjects, images, embeddings deleted no later
  than 24 h after the deployment ends, by the retention sweep).
A list never bound to a deployment is destroyed the same way once it is older than the unbound
limit (settings.watchlist_unbound_hours): a list is built for one deployment, not kept in stock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.matching.subject_face import FaceHint
from chalicelib.matching.template import (
    MAX_REFERENCE_PIXELS,
    EnrollmentError,
    Template,
    build_template,
)
from chalicelib.ops import audit, snapshots
from chalicelib.ops.errors import NotFound
from chalicelib.store import layout
from chalicelib.store.tables import Tables, connection_of, utcnow
from chalicelib.vision.pipeline import FacePipeline


class LifecycleError(ValueError):
    """The action is not allowed in the watchlist's or deployment's current state."""


def create_watchlist(
    tables: Tables, name: str, model_id: str, deployment_id: str | None = None,
    created_by: str = "system", watchlist_id: str | None = None,
) -> str:
    wl = tables.Watchlist(
        watchlist_id=watchlist_id or f"wl-{uuid.uuid4().hex[:12]}",
        name=name,
        model_id=model_id,
        deployment_id=deployment_id,
        created_by=created_by,
        sweep="unbound",  # the retention sweep's until a deployment binds it
    )
    wl.save(condition=tables.Watchlist.watchlist_id.does_not_exist())
    audit.record(tables, audit.watchlist_scope(wl.watchlist_id), created_by, "watchlist.created",
                 wl.watchlist_id, name=name, model_id=model_id)
    return wl.watchlist_id


def get_watchlist(tables: Tables, watchlist_id: str) -> Any:
    try:
        return tables.Watchlist.get(watchlist_id)
    except tables.Watchlist.DoesNotExist:
        raise NotFound(f"watchlist {watchlist_id} not found") from None


def authorise_watchlist(tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str,
                        actor: str) -> None:
    """Authorise the list exactly as it stands: its templates are packed into a snapshot (what
    workers load at cold start, ops/snapshots.py) and the row records the snapshot's sha256 in
    the same update that authorises it, on condition that nothing changed in between."""
    wl = get_watchlist(tables, watchlist_id)
    if wl.status != "draft":
        raise LifecycleError(f"watchlist {watchlist_id} is {wl.status}, not draft")
    if actor == wl.created_by:
        raise LifecycleError("a watchlist must be authorised by someone other than its author")
    W = tables.Watchlist
    # One read of the subjects: what is packed is what is authorised.
    snap = snapshots.subjects_of(tables, watchlist_id, wl.model_id, int(wl.version or 0))
    if not snap.subject_ids:
        raise LifecycleError("an empty watchlist cannot be authorised")
    version = snap.version
    written = snapshots.store(s3, evidence_bucket, snap)
    try:
        wl.update(
            actions=[W.status.set("authorised"), W.authorised_by.set(actor),
                     W.authorised_at.set(utcnow()), *snapshots.record_actions(W, written)],
            condition=(W.status == "draft") & (W.version == version),
        )
    except UpdateError as exc:
        # Only a refused update certainly did not land: after any other error the row may
        # name this snapshot, and a retry (or the destruction of the list) deals with it.
        if _conditional_failed(exc):
            s3.delete_object(Bucket=evidence_bucket, Key=written.key)
            raise LifecycleError(f"watchlist {watchlist_id} changed while it was being "
                                 "authorised: review it and authorise it again") from None
        raise
    audit.record(tables, audit.watchlist_scope(watchlist_id), actor, "watchlist.authorised",
                 watchlist_id, subjects=written.count, version=version,
                 snapshot_sha256=written.sha256)


def _refresh_snapshot(tables: Tables, s3: Any, evidence_bucket: str, wl: Any) -> bool:
    """Re-pack an authorised or active list after a change (a subject taken off it). False
    when it changed again meanwhile: the row's snapshot is then stale, and workers read the
    table until the next refresh, never the old templates."""
    W = tables.Watchlist
    version = int(wl.version or 0)
    written = snapshots.store(s3, evidence_bucket, snapshots.subjects_of(
        tables, wl.watchlist_id, wl.model_id, version))
    try:
        wl.update(actions=snapshots.record_actions(W, written), condition=W.version == version)
    except UpdateError as exc:
        if _conditional_failed(exc):  # certainly not recorded (see authorise_watchlist)
            s3.delete_object(Bucket=evidence_bucket, Key=written.key)
            return False
        raise
    return True


def remove_subject(tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str,
                   subject_id: str, actor: str) -> None:
    """Take one person off a list at any stage (e.g. no longer wanted), safely at every point
    of failure. One transaction deletes the row, bumps the list's version (the snapshot is
    stale from then on, and warm workers reload) and writes the audit entry: the person stops
    being searched for at the moment the removal is recorded, never before or after. The rest
    (their reference image, the list re-packed, the old snapshot deleted) is cleanup that a
    retried DELETE finishes: it answers as the first would have, not 404."""
    wl = get_watchlist(tables, watchlist_id)
    try:
        subject = tables.Subject.get(watchlist_id, subject_id, consistent_read=True)
    except tables.Subject.DoesNotExist:
        subject = None
    if subject is not None:
        scope = wl.deployment_id or audit.watchlist_scope(watchlist_id)
        entry = audit.entry(tables, scope, actor, "subject.removed", subject_id)
        W = tables.Watchlist
        try:
            with TransactWrite(connection=connection_of(W)) as tw:
                tw.delete(subject, condition=tables.Subject.subject_id.exists())
                tw.update(W(watchlist_id), actions=[W.version.add(1),
                                                    W.removed_subjects.add({subject_id})],
                          condition=W.watchlist_id.exists())
                tw.save(entry, condition=tables.Audit.entry.does_not_exist())
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if not any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons):
                raise  # else removed meanwhile by another call: finish it below
    try:  # as the transaction left it
        wl = tables.Watchlist.get(watchlist_id, consistent_read=True)
    except tables.Watchlist.DoesNotExist:
        raise NotFound(f"watchlist {watchlist_id} not found") from None
    if subject_id not in (wl.removed_subjects or set()):
        raise NotFound(f"subject {subject_id} not on watchlist {watchlist_id}")
    _finish_removal(tables, s3, evidence_bucket, wl, subject_id)


def _finish_removal(tables: Tables, s3: Any, evidence_bucket: str, wl: Any,
                    subject_id: str) -> None:
    """Everything a removal leaves to do once recorded; each step safe to run again."""
    s3.delete_object(Bucket=evidence_bucket, Key=layout.reference_key(wl.watchlist_id,
                                                                     subject_id))
    if wl.status not in ("authorised", "active"):
        return  # a draft has no snapshot
    if wl.snapshot_version is None or int(wl.snapshot_version) != int(wl.version or 0):
        _refresh_snapshot(tables, s3, evidence_bucket, wl)
    # Superseded snapshots hold the removed templates: only the one the row names is kept.
    snapshots.delete_prefix(s3, evidence_bucket, layout.snapshot_prefix(wl.watchlist_id),
                            keep=wl.snapshot_key)


def _conditional_failed(exc: UpdateError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _delete_subjects(tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str) -> int:
    """Every subject row (template embedding), reference image and snapshot of a list; how
    many subjects. The prefixes are swept as well: an enrollment that died between storing
    its image and writing its row leaves an image no row names."""
    n = 0
    for subject in tables.Subject.query(watchlist_id):
        if subject.reference_key:
            s3.delete_object(Bucket=evidence_bucket, Key=subject.reference_key)
        subject.delete()
        n += 1
    for prefix in (layout.reference_prefix(watchlist_id), layout.snapshot_prefix(watchlist_id)):
        snapshots.delete_prefix(s3, evidence_bucket, prefix)
    return n


def destroy_watchlist(tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str,
                      actor: str) -> int:
    """Delete every subject, reference image and embedding; keep the (empty) watchlist row and
    the audit trail. Returns how many subjects were destroyed. Safe to run again."""
    wl = get_watchlist(tables, watchlist_id)
    n = _delete_subjects(tables, s3, evidence_bucket, watchlist_id)
    W = tables.Watchlist
    wl.update(actions=[W.status.set("destroyed"), W.destroyed_at.set(utcnow()),
                       W.version.add(1), W.sweep.remove(), *snapshots.clear_actions(W)])
    audit.record(tables, wl.deployment_id or audit.watchlist_scope(watchlist_id), actor,
                 "watchlist.destroyed", watchlist_id, subjects=n)
    return n


UNBOUND = ("draft", "authorised")  # the states of a list no deployment has taken


def destroy_unbound_watchlist(tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str,
                              actor: str) -> int | None:
    """Destroy a list that no deployment has bound; None (and nothing done) if one has.

    The list is marked destroyed first, on condition that it is still unbound, so a deployment
    created at the same moment either binds it first (and the sweep leaves it) or is refused.
    An enrollment racing the sweep removes its own subject (see enroll_subject)."""
    W = tables.Watchlist
    wl = get_watchlist(tables, watchlist_id)
    try:
        wl.update(actions=[W.status.set("destroyed"), W.destroyed_at.set(utcnow()),
                           W.version.add(1), W.sweep.remove(), *snapshots.clear_actions(W)],
                  condition=W.deployment_id.does_not_exist() & W.status.is_in(*UNBOUND))
    except UpdateError as exc:
        if _conditional_failed(exc):
            return None
        raise
    n = _delete_subjects(tables, s3, evidence_bucket, watchlist_id)
    audit.record(tables, audit.watchlist_scope(watchlist_id), actor, "watchlist.destroyed",
                 watchlist_id, subjects=n, reason="never bound to a deployment")
    return n


@dataclass(frozen=True)
class Enrolled:
    subject_id: str
    image_quality: list[float]
    template: Template | None = None


class AlreadyEnrolled(LifecycleError):
    """A subject with this id is on the watchlist already (a retried or resumed enrollment)."""


def check_enrollable(tables: Tables, watchlist_id: str, model_id: str) -> Any:
    """The watchlist, if subjects made by this pipeline may be added to it."""
    watchlist = get_watchlist(tables, watchlist_id)
    if watchlist.status != "draft":
        raise LifecycleError(
            f"watchlist {watchlist_id} is {watchlist.status}: subjects are added to drafts only"
        )
    if watchlist.model_id != model_id:
        raise EnrollmentError(
            f"watchlist {watchlist_id} holds {watchlist.model_id} embeddings; "
            f"this pipeline makes {model_id}"
        )
    return watchlist


def store_subject(
    tables: Tables, s3: Any, evidence_bucket: str, watchlist_id: str, subject_id: str,
    display_name: str, template: Template, reference_image: bytes, model_id: str,
    source: str | None = None, reason: str | None = None, actor: str = "system",
    only_new: bool = False, bump_version: bool = True, precheck: bool = True,
) -> None:
    """Write one subject: its reference image, its row, its audit entry.

    The watchlist is read (consistently) just before, and must still be a draft. `only_new`:
    the row is written on condition that the id is not on the list, else AlreadyEnrolled (a
    retried request or a resumed bulk run never enrolls anyone twice); `precheck=False` skips
    the look before the image is written, where the caller knows the id is absent.
    `bump_version=False` leaves the version bump (warm workers reload on it) to the caller: a
    bulk run bumps it once. No transaction: moto server copies a whole table for each one (so
    a bulk run would slow as the list grows) and is not thread-safe in them."""
    if not layout.valid_id(subject_id):
        raise EnrollmentError(f"subject id {subject_id!r} is not a valid id")
    status = tables.Watchlist.get(watchlist_id, consistent_read=True,
                                  attributes_to_get=["status"]).status
    if status != "draft":
        raise LifecycleError(f"watchlist {watchlist_id} is {status}: subjects are added to "
                             "drafts only")
    if only_new and precheck and _exists(tables, watchlist_id, subject_id):
        raise AlreadyEnrolled(f"subject {subject_id} is on watchlist {watchlist_id} already")
    ref_key = layout.reference_key(watchlist_id, subject_id)
    row = tables.Subject(
        watchlist_id=watchlist_id,
        subject_id=subject_id,
        display_name=display_name,
        model_id=model_id,
        embedding=template.embedding,
        n_images=len(template.image_quality),
        image_quality=template.image_quality,
        reference_agreement=template.agreement,
        reference_key=ref_key,
        source=source,
        reason=reason,
    )
    # The image first: a row never points at a reference that is not there.
    s3.put_object(Bucket=evidence_bucket, Key=ref_key, Body=reference_image)
    try:
        row.save(condition=tables.Subject.subject_id.does_not_exist() if only_new else None)
    except PutError as exc:
        if only_new and exc.cause_response_code == "ConditionalCheckFailedException":
            raise AlreadyEnrolled(
                f"subject {subject_id} is on watchlist {watchlist_id} already") from None
        raise
    if bump_version:
        tables.Watchlist(watchlist_id).update(actions=[tables.Watchlist.version.add(1)])
    audit.record(tables, audit.watchlist_scope(watchlist_id), actor, "subject.added", subject_id,
                 images=len(template.image_quality), source=source, reason=reason,
                 faces=" ".join(",".join(str(v) for v in r.box) for r in template.results
                                if r.box is not None) or None)


def _exists(tables: Tables, watchlist_id: str, subject_id: str) -> bool:
    try:
        tables.Subject.get(watchlist_id, subject_id, attributes_to_get=["subject_id"])
    except tables.Subject.DoesNotExist:
        return False
    return True


def enrolled_ids(tables: Tables, watchlist_id: str) -> set[str]:
    """Ids of the subjects on a watchlist (what a resumed bulk enrollment skips)."""
    return {s.subject_id for s in
            tables.Subject.query(watchlist_id, attributes_to_get=["subject_id"])}


def enroll_subject(
    tables: Tables,
    s3: Any,
    evidence_bucket: str,
    pipeline: FacePipeline,
    watchlist_id: str,
    display_name: str,
    images: list[tuple[str, bytes]],
    source: str | None = None,
    reason: str | None = None,
    subject_id: str | None = None,
    actor: str = "system",
    hints: Sequence[FaceHint | None] | None = None,
    max_pixels: int = MAX_REFERENCE_PIXELS,
    only_new: bool = False,
) -> Enrolled:
    """Add (or replace) one subject; bumps the watchlist version so warm workers reload.

    `hints`: the operator's choice of face per image, where a photo has several (see
    matching/subject_face.py); `only_new`: see store_subject."""
    check_enrollable(tables, watchlist_id, pipeline.model_id)
    subject_id = subject_id or f"s-{uuid.uuid4().hex[:12]}"
    if not layout.valid_id(subject_id):
        raise EnrollmentError(f"subject id {subject_id!r} is not a valid id")
    template = build_template(pipeline, images, hints, max_pixels)
    store_subject(tables, s3, evidence_bucket, watchlist_id, subject_id, display_name, template,
                  images[0][1], pipeline.model_id, source=source, reason=reason, actor=actor,
                  only_new=only_new)
    return Enrolled(subject_id, template.image_quality, template)
