"""Watchlist snapshots against moto server (issue 12, item 3): written at authorisation, loaded
by the worker, refused when altered or stale (the table decides instead), re-packed when an
authorised list changes, destroyed with the list."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from chalicelib.local.inspect import all_keys
from chalicelib.matching.snapshot import Expected, Snapshot, pack, unpack
from chalicelib.ops import snapshots, watchlists
from chalicelib.ops.audit import watchlist_scope
from chalicelib.ops.deployments import create_deployment, end_deployment
from chalicelib.ops.errors import NotFound
from chalicelib.ops.retention import sweep
from chalicelib.ops.watchlists import (
    LifecycleError,
    authorise_watchlist,
    create_watchlist,
    enroll_subject,
    remove_subject,
)
from chalicelib.store import layout
from tests.integration.conftest import demo_person, jpeg, log_records

CORY, BARBARA = "Cory Gardner", "Barbara Lee"


def _people(*names: str) -> dict[str, list[Any]]:
    return {n: [demo_person(n.replace(" ", "_"), 1)] for n in names}


def _objects(rt: Any, prefix: str) -> list[str]:
    return [k for k in all_keys(rt.client("s3"), rt.settings.evidence_bucket)
            if k.startswith(prefix)]


def _stored(rt: Any, wl: Any) -> Snapshot:
    body = rt.client("s3").get_object(Bucket=rt.settings.evidence_bucket,
                                      Key=wl.snapshot_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == wl.snapshot_sha256
    return unpack(body, Expected(wl.watchlist_id, int(wl.version), wl.model_id,
                                 wl.snapshot_sha256))


def _walk_past(sc: Any, pump: Any, sequence: int, person: str) -> list[Any]:
    sc.upload(sequence, [jpeg(demo_person(person.replace(" ", "_"), 2))],
              at=datetime.now(UTC) + timedelta(minutes=5 * sequence))
    pump.drain(timeout=120)
    return sc.alerts()


def test_authorisation_packs_the_list_and_the_worker_decides_from_it(
        scenario_factory, local_stack) -> None:
    sc = scenario_factory(_people(CORY, BARBARA))
    rt = sc.rt
    wl = rt.tables.Watchlist.get(sc.watchlist_id)
    assert wl.snapshot_key == layout.snapshot_key(sc.watchlist_id, wl.version)
    assert wl.snapshot_version == wl.version
    snap = _stored(rt, wl)
    assert sorted(snap.subject_ids) == sorted(sc.subjects.values())
    assert dict(zip(snap.subject_ids, snap.names, strict=True)) == {
        sid: name for name, sid in sc.subjects.items()}
    for sid, template in zip(snap.subject_ids, snap.templates, strict=True):
        row = rt.tables.Subject.get(sc.watchlist_id, sid)
        assert np.array_equal(np.asarray(row.embedding, np.float32), template)
    [event] = [e for e in rt.tables.Audit.query(watchlist_scope(sc.watchlist_id))
               if e.action == "watchlist.authorised"]
    assert event.details.as_dict()["snapshot_sha256"] == wl.snapshot_sha256

    alerts = _walk_past(sc, local_stack["pump"], 0, CORY)
    assert [a.subject_id for a in alerts] == [sc.subjects[CORY]]
    held = rt.index_cache.held(sc.watchlist_id)
    assert held is not None and held.source == "snapshot" and held.refused is None
    assert held.version == wl.version


def test_an_altered_snapshot_is_refused_and_the_table_decides(
        scenario_factory, local_stack, caplog) -> None:
    """Someone with write access to the bucket swaps Cory's template for Barbara's face: a
    snapshot that would accuse her as him. Its digest no longer matches: refused, and the
    subject rows decide (she is on no list: no alert)."""
    sc = scenario_factory(_people(CORY))
    rt = sc.rt
    wl = rt.tables.Watchlist.get(sc.watchlist_id)
    snap = _stored(rt, wl)
    image = demo_person("Barbara_Lee", 2)
    her = rt.pipeline.analyze(
        __import__("cv2").imread(str(image))).faces[0].embedding.astype(np.float32)
    forged = pack(Snapshot(snap.watchlist_id, snap.version, snap.model_id, snap.subject_ids,
                           snap.names, her[None, :]))
    rt.client("s3").put_object(Bucket=rt.settings.evidence_bucket, Key=wl.snapshot_key,
                               Body=forged)

    alerts = _walk_past(sc, local_stack["pump"], 0, BARBARA)
    assert alerts == []
    held = rt.index_cache.held(sc.watchlist_id)
    assert held is not None and (held.source, held.refused) == ("table", "digest")
    [warning] = log_records(caplog, "watchlist snapshot refused, read the table instead")
    assert warning["reason"] == "digest"
    # Cory himself still alerts, from the rows.
    assert [a.subject_id for a in _walk_past(sc, local_stack["pump"], 1, CORY)] == [
        sc.subjects[CORY]]


def test_a_stale_snapshot_is_refused(scenario_factory, local_stack) -> None:
    sc = scenario_factory(_people(CORY))
    rt, W = sc.rt, sc.rt.tables.Watchlist
    W.get(sc.watchlist_id).update(actions=[W.version.add(1)])  # a change not (yet) re-packed
    alerts = _walk_past(sc, local_stack["pump"], 0, CORY)
    assert [a.subject_id for a in alerts] == [sc.subjects[CORY]]
    held = rt.index_cache.held(sc.watchlist_id)
    assert held is not None and (held.source, held.refused) == ("table", "stale")


def test_taking_someone_off_an_active_list_repacks_it(scenario_factory, local_stack) -> None:
    sc = scenario_factory(_people(CORY, BARBARA))
    rt, pump = sc.rt, local_stack["pump"]
    first = rt.tables.Watchlist.get(sc.watchlist_id)
    assert len(_walk_past(sc, pump, 0, BARBARA)) == 1  # loaded, and she is on it

    remove_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, sc.watchlist_id,
                   sc.subjects[BARBARA], "operator-1")
    wl = rt.tables.Watchlist.get(sc.watchlist_id)
    assert wl.version == first.version + 1 and wl.snapshot_version == wl.version
    assert _stored(rt, wl).subject_ids == [sc.subjects[CORY]]
    # The old snapshot (with her template) is kept nowhere.
    assert _objects(rt, layout.snapshot_prefix(sc.watchlist_id)) == [wl.snapshot_key]
    # Asked again (a retry after a lost answer): done, not 404, nothing changed; an id never
    # on the list is still a 404.
    remove_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, sc.watchlist_id,
                   sc.subjects[BARBARA], "operator-1")
    assert rt.tables.Watchlist.get(sc.watchlist_id).version == wl.version
    with pytest.raises(NotFound):
        remove_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, sc.watchlist_id,
                       "s-never-listed", "operator-1")

    later = _walk_past(sc, pump, 1, BARBARA)
    assert len(later) == 1  # only the first alert: she is no longer searched for
    held = rt.index_cache.held(sc.watchlist_id)
    assert held is not None and held.source == "snapshot" and held.version == wl.version


def test_a_change_during_authorisation_refuses_it(rt, monkeypatch) -> None:
    wid = create_watchlist(rt.tables, f"race {uuid.uuid4().hex[:6]}", rt.pipeline.model_id,
                           created_by="operator-1")
    s3, bucket = rt.client("s3"), rt.settings.evidence_bucket
    for name in (CORY, BARBARA):
        enroll_subject(rt.tables, s3, bucket, rt.pipeline, wid, name,
                       [("1.jpg", demo_person(name.replace(" ", "_"), 1).read_bytes())],
                       source="t", reason="t")
    real_store = snapshots.store

    def store_then_enroll(*a: Any, **kw: Any) -> Any:
        written = real_store(*a, **kw)
        W = rt.tables.Watchlist  # an enrollment lands after the list was packed
        W.get(wid).update(actions=[W.version.add(1)])
        return written

    monkeypatch.setattr(watchlists.snapshots, "store", store_then_enroll)
    with pytest.raises(LifecycleError, match="changed while it was being authorised"):
        authorise_watchlist(rt.tables, s3, bucket, wid, "operator-2")
    wl = rt.tables.Watchlist.get(wid)
    assert wl.status == "draft" and wl.snapshot_key is None
    assert _objects(rt, layout.snapshot_prefix(wid)) == []
    monkeypatch.setattr(watchlists.snapshots, "store", real_store)
    authorise_watchlist(rt.tables, s3, bucket, wid, "operator-2")  # again, on what it now is
    assert rt.tables.Watchlist.get(wid).status == "authorised"


def test_destruction_after_the_deployment_removes_snapshots_and_stray_images(rt) -> None:
    wid = create_watchlist(rt.tables, f"end {uuid.uuid4().hex[:6]}", rt.pipeline.model_id,
                           created_by="operator-1")
    s3, bucket = rt.client("s3"), rt.settings.evidence_bucket
    enroll_subject(rt.tables, s3, bucket, rt.pipeline, wid, CORY,
                   [("1.jpg", demo_person("Cory_Gardner", 1).read_bytes())], source="t",
                   reason="t")
    authorise_watchlist(rt.tables, s3, bucket, wid, "operator-2")
    # An enrollment that died between storing its image and writing its row.
    s3.put_object(Bucket=bucket, Key=layout.reference_key(wid, "s-crashed"), Body=b"jpeg")
    now = datetime.now(UTC)
    dep = create_deployment(rt.tables, "ended", wid, ["cam-1"], 0.5,
                            deployment_id=f"dep-{uuid.uuid4().hex[:8]}", starts_at=now,
                            ends_at=now + timedelta(hours=1))
    end_deployment(rt.tables, dep, "operator-1")
    done = sweep(rt.tables, s3, bucket, now + timedelta(days=2), timedelta(hours=24))
    assert done["watchlists_destroyed"] >= 1
    wl = rt.tables.Watchlist.get(wid)
    assert wl.status == "destroyed" and wl.snapshot_key is None
    assert _objects(rt, layout.snapshot_prefix(wid)) == []
    assert _objects(rt, layout.reference_prefix(wid)) == []


def test_a_list_authorised_at_version_zero_loads_from_its_snapshot(rt) -> None:
    """Rows written without a version bump (a bulk run that died before its one bump) leave
    the list at version 0: its snapshot is still the authorised one, not a stale one."""
    from chalicelib.ops.watchlist_index import load_index

    wid = create_watchlist(rt.tables, f"v0 {uuid.uuid4().hex[:6]}", rt.pipeline.model_id,
                           created_by="operator-1")
    S = rt.tables.Subject
    S(watchlist_id=wid, subject_id="s-v0", display_name="Someone", model_id=rt.pipeline.model_id,
      embedding=np.eye(128, dtype=np.float32)[0], source="t", reason="t").save()
    s3, bucket = rt.client("s3"), rt.settings.evidence_bucket
    authorise_watchlist(rt.tables, s3, bucket, wid, "operator-2")
    wl = rt.tables.Watchlist.get(wid)
    assert wl.version == 0 and wl.snapshot_version == 0
    held = load_index(rt.tables, s3, bucket, wl)
    assert (held.source, held.refused, list(held.names)) == ("snapshot", None, ["s-v0"])
