"""Watchlists no deployment ever bound (issue 10, item 6b): destroyed by the retention sweep
within the policy's limit, with their templates and reference images, and audited; races with a
deployment or an enrollment leave nothing behind. Against moto server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.local.inspect import all_keys
from chalicelib.ops import deployments, watchlists
from chalicelib.ops.audit import watchlist_scope
from chalicelib.ops.deployments import create_deployment
from chalicelib.ops.retention import sweep
from chalicelib.ops.watchlists import (
    LifecycleError,
    authorise_watchlist,
    create_watchlist,
    destroy_unbound_watchlist,
    enroll_subject,
)
from chalicelib.store import layout
from tests.integration.conftest import demo_person
from tests.integration.kept import scan_items

GRACE = timedelta(hours=1)


def _draft(rt: Any, people: tuple[str, ...] = ("Cory_Gardner",), authorise: bool = False) -> str:
    wid = create_watchlist(rt.tables, f"unbound {uuid.uuid4().hex[:6]}", rt.pipeline.model_id,
                           created_by="operator-1")
    for name in people:
        image = demo_person(name, 1)
        enroll_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, rt.pipeline, wid,
                       name, [(image.name, image.read_bytes())], source="test", reason="test",
                       actor="operator-1")
    if authorise:
        authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wid,
                            "operator-2")
    return wid


def _subject_rows(rt: Any, wid: str) -> list[dict[str, Any]]:
    table = f"{rt.settings.table_prefix}-subjects"
    return [i for i in scan_items(rt.client("dynamodb"), table) if i["watchlist_id"]["S"] == wid]


def _references(rt: Any, wid: str) -> list[str]:
    return [k for k in all_keys(rt.client("s3"), rt.settings.evidence_bucket)
            if k.startswith(f"{layout.REFERENCES_PREFIX}{wid}/")]


def _snapshots(rt: Any, wid: str) -> list[str]:
    return [k for k in all_keys(rt.client("s3"), rt.settings.evidence_bucket)
            if k.startswith(layout.snapshot_prefix(wid))]


def _trail(rt: Any, wid: str) -> list[Any]:
    return list(rt.tables.Audit.query(watchlist_scope(wid)))


def test_the_sweep_destroys_watchlists_never_bound(rt) -> None:
    s3, bucket = rt.client("s3"), rt.settings.evidence_bucket
    draft = _draft(rt, ("Cory_Gardner", "Barbara_Lee"))
    authorised = _draft(rt, ("James_Risch",), authorise=True)
    bound = _draft(rt, ("Doug_Collins",), authorise=True)
    now = datetime.now(UTC)
    dep = create_deployment(rt.tables, "bound", bound, ["cam-1"], 0.5,
                            deployment_id=f"dep-{uuid.uuid4().hex[:8]}",
                            ends_at=now + timedelta(days=3))
    assert _references(rt, draft) and _subject_rows(rt, draft)
    assert _snapshots(rt, authorised) and not _snapshots(rt, draft)  # packed at authorisation

    # Younger than the limit: kept (an operator may still be building the list).
    early = sweep(rt.tables, s3, bucket, now + timedelta(hours=11), GRACE,
                  unbound_after=timedelta(hours=12))
    assert rt.tables.Watchlist.get(draft).status == "draft"
    assert rt.tables.Watchlist.get(authorised).status == "authorised"
    assert early["unbound_watchlists_destroyed"] == 0

    done = sweep(rt.tables, s3, bucket, now + timedelta(hours=12, minutes=1), GRACE,
                 unbound_after=timedelta(hours=12))
    assert done["unbound_watchlists_destroyed"] >= 2 and done["subjects_destroyed"] >= 3
    for wid in (draft, authorised):
        wl = rt.tables.Watchlist.get(wid)
        assert wl.status == "destroyed" and wl.destroyed_at is not None
        assert _subject_rows(rt, wid) == []  # templates (embeddings) gone
        assert _references(rt, wid) == []  # reference images gone
        assert _snapshots(rt, wid) == []  # packed templates gone
        assert wl.snapshot_key is None and wl.snapshot_sha256 is None
        [event] = [e for e in _trail(rt, wid) if e.action == "watchlist.destroyed"]
        assert event.actor == "retention-sweep"
        assert event.details.as_dict()["reason"] == "never bound to a deployment"
    # The list a deployment took is left to its deployment's end.
    assert rt.tables.Watchlist.get(bound).status == "active"
    assert _subject_rows(rt, bound) and _references(rt, bound) and _snapshots(rt, bound)
    assert rt.tables.Deployment.get(dep).status == "active"
    # Run again: nothing more to do for these lists, nothing audited twice.
    sweep(rt.tables, s3, bucket, now + timedelta(hours=13), GRACE,
          unbound_after=timedelta(hours=12))
    assert [e.action for e in _trail(rt, draft)].count("watchlist.destroyed") == 1


def test_the_scheduled_sweep_applies_the_unbound_limit_from_settings(rt, local_stack) -> None:
    # A list created 13 h ago (the default limit is 12 h) and never bound, through the app's own
    # scheduled handler with the real clock.
    wid = _draft(rt)
    old = datetime.now(UTC) - timedelta(hours=13)
    wl = rt.tables.Watchlist.get(wid)
    wl.update(actions=[rt.tables.Watchlist.created_at.set(old)])
    fresh = _draft(rt, ("Barbara_Lee",))
    assert rt.settings.watchlist_unbound_hours == 12
    with Client(local_stack["app"]) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        result = client.lambda_.invoke("retention_sweep", event)
    assert result.payload["unbound_watchlists_destroyed"] >= 1
    assert rt.tables.Watchlist.get(wid).status == "destroyed"
    assert _subject_rows(rt, wid) == [] and _references(rt, wid) == []
    assert rt.tables.Watchlist.get(fresh).status == "draft"


def test_a_bound_watchlist_is_not_destroyed_as_unbound(rt) -> None:
    wid = _draft(rt, authorise=True)
    create_deployment(rt.tables, "x", wid, ["cam-1"], 0.5,
                      deployment_id=f"dep-{uuid.uuid4().hex[:8]}")
    assert destroy_unbound_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                                     wid, "retention-sweep") is None
    assert rt.tables.Watchlist.get(wid).status == "active" and _subject_rows(rt, wid)


def test_a_deployment_cannot_bind_a_list_destroyed_after_it_was_read(rt, monkeypatch) -> None:
    wid = _draft(rt, authorise=True)
    stale = rt.tables.Watchlist.get(wid)  # what create_deployment read: authorised
    destroy_unbound_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wid,
                              "retention-sweep")
    monkeypatch.setattr(deployments, "get_watchlist", lambda tables, w: stale)
    dep = f"dep-{uuid.uuid4().hex[:8]}"
    with pytest.raises(LifecycleError, match="destroyed or bound"):
        create_deployment(rt.tables, "late", wid, ["cam-1"], 0.5, deployment_id=dep)
    assert rt.tables.Watchlist.get(wid).status == "destroyed"
    with pytest.raises(rt.tables.Deployment.DoesNotExist):
        rt.tables.Deployment.get(dep)


def test_an_enrollment_racing_the_sweep_leaves_no_subject(rt, monkeypatch) -> None:
    wid = _draft(rt)
    stale = rt.tables.Watchlist.get(wid)  # what enroll_subject read: a draft
    destroy_unbound_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wid,
                              "retention-sweep")
    monkeypatch.setattr(watchlists, "get_watchlist", lambda tables, w: stale)
    image = demo_person("James_Risch", 1)
    with pytest.raises(LifecycleError, match="drafts only|not added"):
        enroll_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, rt.pipeline, wid,
                       "late", [(image.name, image.read_bytes())], source="s", reason="r")
    assert _subject_rows(rt, wid) == [] and _references(rt, wid) == []


# Retention that goes on past a failure, and reads only what is due (issue 22, item 4).

def _due_alerts(rt: Any, n: int) -> tuple[str, list[Any]]:
    """`n` alerts of a fresh deployment whose crops expire now (0 days' retention)."""
    import numpy as np

    from chalicelib.alerts.raise_alert import AlertContext, raise_alert
    from chalicelib.ingest.process import Match

    wid = create_watchlist(rt.tables, "due", "model-x", created_by="operator-1")
    rt.tables.Subject(watchlist_id=wid, subject_id="s-0", display_name="n0", model_id="model-x",
                      embedding=np.ones(128, np.float32)).save()
    authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wid,
                        "operator-2")
    dep = create_deployment(rt.tables, "due", wid, ["cam-1"], 0.5,
                            deployment_id=f"dep-{uuid.uuid4().hex[:8]}")
    ctx = AlertContext(dep, "cam-1", 0, "b", wid, "model-x", 0.5, None, 0)
    crop = np.zeros((8, 8, 3), np.uint8)
    for i in range(n):
        raise_alert(rt.tables, rt.client("s3"), rt.client("sqs"), rt.settings.evidence_bucket,
                    rt.queue_url(rt.settings.alerts_queue), ctx,
                    Match(f"s-{i}", 0.9, 0, datetime.now(UTC), (0, 0, 8, 8), crop), f"n{i}")
    sqs, url = rt.client("sqs"), rt.queue_url(rt.settings.alerts_queue)
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in msgs:  # no notifier here: their pushes are not what is tested
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return dep, list(rt.tables.Alert.by_deployment.query(dep))


def test_a_denied_deletion_stops_nothing_after_it_and_is_counted(rt) -> None:
    s3, bucket = rt.client("s3"), rt.settings.evidence_bucket
    dep, alerts = _due_alerts(rt, 3)
    denied = alerts[0].crop_key
    CT = rt.tables.CameraTracks
    gone = datetime.now(UTC) - timedelta(minutes=5)
    CT(f"{dep}#cam-1", version=1, state="{}", written_at=gone, expires_at=gone).save()

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == denied:
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected"}},
                              "DeleteObject")

    s3.meta.events.register_first("before-parameter-build.s3.DeleteObject", deny)
    try:
        done = sweep(rt.tables, s3, bucket, datetime.now(UTC) + timedelta(seconds=1), GRACE)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.DeleteObject", deny)
    assert done["failures"] == 1
    assert done["crops_deleted"] >= 2
    left = [k for k in all_keys(s3, bucket) if k.startswith(f"{layout.CROPS_PREFIX}{dep}/")]
    assert left == [denied]
    assert [a.crop_deleted_at is None for a in rt.tables.Alert.by_deployment.query(dep)] == [
        a.alert_id == alerts[0].alert_id for a in alerts]
    with pytest.raises(CT.DoesNotExist):  # swept after the failure too
        CT.get(f"{dep}#cam-1")
    # The next run does the one left.
    again = sweep(rt.tables, s3, bucket, datetime.now(UTC) + timedelta(seconds=1), GRACE)
    assert again["failures"] == 0 and again["crops_deleted"] >= 1
    assert not [k for k in all_keys(s3, bucket) if k.startswith(f"{layout.CROPS_PREFIX}{dep}/")]


def test_the_scheduled_sweep_reports_its_failures_as_a_metric(rt, local_stack, capsys,
                                                             monkeypatch) -> None:
    """What the retention-failures alarm watches (monitoring.py): one EMF record per run."""
    import json

    from chalicelib import monitoring

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # the local stack's default
    with Client(local_stack["app"]) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        result = client.lambda_.invoke("retention_sweep", event)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if '"_aws"' in line]
    [alarm] = [a for a in monitoring.alarms(rt.settings) if a.metric == "RetentionFailures"]
    [emf] = [r for r in records if alarm.metric in r]
    values = emf[alarm.metric] if isinstance(emf[alarm.metric], list) else [emf[alarm.metric]]
    assert sum(values) == result.payload["failures"] == 0
    metric = emf["_aws"]["CloudWatchMetrics"][0]
    assert metric["Namespace"] == alarm.namespace
    assert metric["Dimensions"] == [[alarm.dimension[0]]]  # exactly the alarm's dimension
    assert emf[alarm.dimension[0]] == alarm.dimension[1]


def test_the_sweep_reads_by_key_and_index_never_scans(rt, monkeypatch) -> None:
    """Its cost follows what is open or due, not months of history: no Scan of any table."""
    from botocore.client import BaseClient

    _due_alerts(rt, 1)
    calls: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, str(params.get("TableName", ""))))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    done = sweep(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                 datetime.now(UTC) + timedelta(seconds=1), GRACE)
    assert done["crops_deleted"] >= 1
    assert [c for c in calls if c[0] == "Scan"] == []
    assert {t for op, t in calls if op == "Query"} >= {
        f"{rt.settings.table_prefix}-{t}" for t in ("alerts", "deployments", "watchlists")}
