""""Not this person" (issue 10, item 5), end to end on moto server: a look-alike an officer
adjudicated false, passing again in the same deployment, is flagged to officers as that
look-alike and not pushed as a new alert; the real subject still alerts; the memory lasts no
longer than the alert's retention or the deployment, and the retention sweep deletes it."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from chalicelib.ops.deployments import create_deployment, end_deployment
from chalicelib.ops.lookalikes import remember, ruled_out
from chalicelib.ops.records import transparency_record
from chalicelib.ops.retention import sweep
from chalicelib.ops.watchlists import create_watchlist
from tests.integration.conftest import demo_person, jpeg

SUBJECT, LOOKALIKE = "Doris_Matsui", "Anna_Eshoo"  # the closest impostor pair of demo/people


def test_a_ruled_out_lookalike_is_flagged_not_alerted_again(scenario_factory, local_stack,
                                                           api, report) -> None:
    # A threshold low enough that Anna Eshoo (cosine ~0.35 against Doris Matsui's template)
    # is matched: the false alert every deployment must expect now and then.
    sc = scenario_factory({"Doris Matsui": [demo_person(SUBJECT, 1)]}, threshold=0.25,
                          cameras=("cam-1", "cam-2"))
    rt, pump, did = sc.rt, local_stack["pump"], sc.deployment_id
    officer = api.token("officer-1", ["officer"], [did])
    t0 = datetime.now(UTC)
    sc.upload(0, [jpeg(demo_person(LOOKALIKE, 2))], at=t0)
    pump.drain(timeout=120)
    [first] = sc.alerts()
    assert first.display_name == "Doris Matsui" and first.lookalike_of is None
    assert [p.data["alert_id"] for p in sc.pushes()] == [first.alert_id]

    # The officer compares the crop with the watchlist image: not her.
    api.ok("POST", f"/alerts/{first.alert_id}/adjudication", officer,
           {"decision": "false_alert", "note": "not her"})
    [held] = ruled_out(rt.tables.Deployment.get(did).lookalikes)
    assert (held.alert_id, held.subject_id) == (first.alert_id, first.subject_id)
    assert held.score == float(first.score)  # what the alert keeps: nothing of her face

    # Ten minutes later she walks past the same camera, and then the deployment's other one.
    sc.upload(1, [jpeg(demo_person(LOOKALIKE, 2))], at=t0 + timedelta(minutes=10))
    pump.drain(timeout=120)
    dataclasses.replace(sc, camera_id="cam-2").upload(
        0, [jpeg(demo_person(LOOKALIKE, 2))], at=t0 + timedelta(minutes=15))
    pump.drain(timeout=120)
    alerts = sorted(sc.alerts(), key=lambda a: a.captured_at)
    assert len(alerts) == 3
    for again, camera in zip(alerts[1:], ("cam-1", "cam-2"), strict=True):
        assert again.camera_id == camera and again.status == "alert"
        assert again.lookalike_of == first.alert_id  # flagged as the look-alike ruled out
        assert again.notified_at is None
    assert [p.data["alert_id"] for p in sc.pushes()] == [first.alert_id]  # no new push
    # The officer still sees them, flagged, in the alert list the console polls.
    listed = {a["alert_id"]: a for a in api.ok("GET", f"/deployments/{did}/alerts", officer)}
    assert [listed[a.alert_id]["lookalike_of"] for a in alerts] == \
        [None, first.alert_id, first.alert_id]
    raised = [e for e in rt.tables.Audit.query(did) if e.action == "alert.raised"]
    assert sum(1 for e in raised if e.details.as_dict().get("lookalike_of")) == 2

    # Doris Matsui herself passes: a much higher score, a new alert, pushed as usual.
    sc.upload(2, [jpeg(demo_person(SUBJECT, 2))], at=t0 + timedelta(minutes=20))
    pump.drain(timeout=120)
    real = max(sc.alerts(), key=lambda a: a.captured_at)
    assert real.lookalike_of is None and real.camera_id == "cam-1"
    assert float(real.score) > float(first.score) + rt.settings.lookalike_margin
    report(f"look-alike {LOOKALIKE} against {SUBJECT}: {float(first.score):.3f}, "
           f"{float(alerts[1].score):.3f}, {float(alerts[2].score):.3f} (flagged); "
           f"{SUBJECT} herself {float(real.score):.3f}; margin {rt.settings.lookalike_margin}")
    assert sorted(p.data["alert_id"] for p in sc.pushes()) == \
        sorted([first.alert_id, real.alert_id])

    # The record counts every alert, flagged or not; the rate waits for the officers.
    rec = transparency_record(rt.tables, did)
    assert (rec["alerts"], rec["lookalike_alerts"], rec["false_alerts"],
            rec["unadjudicated"]) == (4, 2, 1, 3)
    assert rec["measured_fpir"] == "unknown"

    # Ruling a flagged alert false again keeps the memory; the end of the deployment drops it.
    api.ok("POST", f"/alerts/{alerts[1].alert_id}/adjudication", officer,
           {"decision": "false_alert"})
    assert len(ruled_out(rt.tables.Deployment.get(did).lookalikes)) == 2
    end_deployment(rt.tables, did, "operator-1")
    assert ruled_out(rt.tables.Deployment.get(did).lookalikes) == []
    trail = [e for e in rt.tables.Audit.query(did) if e.action == "deployment.ended"]
    assert trail[0].details.as_dict()["lookalikes_forgotten"] == "2"


def test_a_flagged_alert_adjudicated_true_drops_the_memory(scenario_factory, local_stack,
                                                           api) -> None:
    # Band generous enough to flag the real subject: the officer says it is her, and the
    # memory that held her back is forgotten, so her next passing alerts.
    sc = scenario_factory({"Doris Matsui": [demo_person(SUBJECT, 1)]}, threshold=0.25)
    rt, pump, did = sc.rt, local_stack["pump"], sc.deployment_id
    officer = api.token("officer-1", ["officer"], [did])
    t0 = datetime.now(UTC)
    sc.upload(0, [jpeg(demo_person(LOOKALIKE, 2))], at=t0)
    pump.drain(timeout=120)
    [first] = sc.alerts()
    api.ok("POST", f"/alerts/{first.alert_id}/adjudication", officer, {"decision": "false_alert"})
    D = rt.tables.Deployment
    dep = D.get(did)
    dep.update(actions=[D.lookalikes[first.alert_id]["score"].set(0.99)])
    sc.upload(1, [jpeg(demo_person(SUBJECT, 2))], at=t0 + timedelta(minutes=10))
    pump.drain(timeout=120)
    flagged = max(sc.alerts(), key=lambda a: a.captured_at)
    assert flagged.lookalike_of == first.alert_id
    api.ok("POST", f"/alerts/{flagged.alert_id}/adjudication", officer,
           {"decision": "true_alert"})
    assert ruled_out(D.get(did).lookalikes) == []
    [gone] = [e for e in rt.tables.Audit.query(did) if e.action == "lookalike.forgotten"]
    assert gone.target == first.alert_id and gone.actor == "officer-1"
    sc.upload(2, [jpeg(demo_person(SUBJECT, 2))], at=t0 + timedelta(minutes=20))
    pump.drain(timeout=120)
    latest = max(sc.alerts(), key=lambda a: a.captured_at)
    assert latest.lookalike_of is None and latest.notified_at is not None


def _deployment(rt, ends_in: timedelta) -> str:  # type: ignore[no-untyped-def]
    wl = create_watchlist(rt.tables, f"lookalike {uuid.uuid4().hex[:6]}", rt.pipeline.model_id)
    now = datetime.now(UTC)
    return create_deployment(rt.tables, "x", wl, ["cam-1"], 0.5,
                             deployment_id=f"dep-{uuid.uuid4().hex[:8]}", starts_at=now,
                             ends_at=now + ends_in, require_authorised=False)


def _false_alert(rt, did: str, expires: datetime):  # type: ignore[no-untyped-def]
    """An alert row as raise_alert leaves it (not saved: remember reads these fields)."""
    return rt.tables.Alert(alert_id=f"al-{uuid.uuid4().hex[:24]}", deployment_id=did,
                           subject_id="s-1", score=0.31, expires_at=expires)


def test_the_memory_lasts_until_the_crop_expires_and_the_sweep_deletes_it(rt) -> None:
    # A deployment that outlasts the alert's retention: the alert's expiry comes first.
    now = datetime.now(UTC)
    did = _deployment(rt, timedelta(days=40))
    alert = _false_alert(rt, did, now + timedelta(hours=1))
    assert remember(rt.tables, alert, "officer-1", now)
    [held] = ruled_out(rt.tables.Deployment.get(did).lookalikes)
    assert held.until == alert.expires_at.timestamp()
    s3, bucket, grace = rt.client("s3"), rt.settings.evidence_bucket, timedelta(hours=1)
    sweep(rt.tables, s3, bucket, now + timedelta(minutes=59), grace)
    assert len(ruled_out(rt.tables.Deployment.get(did).lookalikes)) == 1
    done = sweep(rt.tables, s3, bucket, now + timedelta(hours=1, minutes=1), grace)
    assert done["lookalikes_forgotten"] >= 1
    dep = rt.tables.Deployment.get(did)
    assert ruled_out(dep.lookalikes) == [] and dep.status == "active"
    [gone] = [e for e in rt.tables.Audit.query(did) if e.action == "lookalike.forgotten"]
    assert (gone.target, gone.actor) == (alert.alert_id, "retention-sweep")
    assert gone.details.as_dict()["reason"] == "expired"


def test_the_memory_lasts_no_longer_than_the_deployment(rt) -> None:
    now = datetime.now(UTC)
    did = _deployment(rt, timedelta(hours=2))
    alert = _false_alert(rt, did, now + timedelta(days=31))
    assert remember(rt.tables, alert, "officer-1", now)
    [held] = ruled_out(rt.tables.Deployment.get(did).lookalikes)
    assert held.until == rt.tables.Deployment.get(did).ends_at.timestamp()
    # The deployment runs past its end unattended: the sweep ends it and forgets.
    done = sweep(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                 now + timedelta(hours=2, minutes=1), timedelta(hours=1))
    dep = rt.tables.Deployment.get(did)
    assert dep.status == "ended" and ruled_out(dep.lookalikes) == []
    assert done["lookalikes_forgotten"] >= 1
    # Nothing is remembered for an ended deployment.
    assert not remember(rt.tables, _false_alert(rt, did, now + timedelta(days=31)), "o", now)
    assert ruled_out(rt.tables.Deployment.get(did).lookalikes) == []
