"""Each function is granted what its code calls, and nothing more (issue 22 item 5).

Each function of the app is run against moto server on the paths its code takes: the API (every
route, through chalice's test client), the frames worker and the notifier (a batch through to
an alert and its pushes, with the retries, the replays and the dead letters they handle), the
retention sweep and the camera watch (their schedules). Each AWS call a function makes is
recorded as IAM sees it (tests/iam_use.py), and its policy (infra/policies.py) is compared with
them: a grant its code never used fails, and so does a call no grant allows.
"""

from __future__ import annotations

import base64
import dataclasses
import pprint
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest

from chalicelib import names
from chalicelib.ingest.batch_format import pack_batch
from chalicelib.link_secret import read_link_secret
from chalicelib.local.resources import dlq_name
from chalicelib.ops.deployments import register_device
from chalicelib.store import layout
from infra import policies, spec
from tests.iam_use import Functions, Use, recording, recording_functions, ungranted, unused_grants
from tests.integration.conftest import build_scenario, demo_person, jpeg
from tests.integration.test_camera_health import _beat


def _b64(path: Any) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _faceless() -> str:
    ok, buf = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def _link_key_read(rt: Any) -> list[Use]:
    """The calls of reading the link key, as a container does once where the stage has no
    LFR_LINK_SECRET."""
    s = rt.settings
    sm = rt.client("secretsmanager")
    sm.create_secret(Name=s.link_secret_name, SecretString="k" * 64)
    try:
        with recording(s.region) as got:
            read_link_secret(dataclasses.replace(s, link_secret=""), sm)
        return list(got)
    finally:
        sm.delete_secret(SecretId=s.link_secret_name, ForceDeleteWithoutRecovery=True)


def test_the_api_function_is_granted_only_what_its_routes_call(api, rt, local_stack) -> None:
    s = rt.settings
    used: list[Use] = []

    def call(method: str, path: str, token: str, body: Any = None, status: int = 200) -> Any:
        with recording(s.region) as got:
            resp = api.call(method, path, token, body)
        used.extend(got)
        assert resp.status_code == status, (method, path, resp.status_code, resp.body[:300])
        return resp.json_body if path.endswith(".html") is False else resp.body

    op1, op2 = api.token("operator-1", ["operator"]), api.token("operator-2", ["operator"])
    auditor = api.token("auditor-1", ["auditor"])
    subject = {"source": "s", "reason": "r"}
    wid = call("POST", "/watchlists", op1, {"name": "least privilege"})["watchlist_id"]
    call("POST", f"/watchlists/{wid}/subjects", op1, {
        "display_name": "Cory Gardner", "images_b64": [_b64(demo_person("Cory_Gardner", 1))],
        **subject})
    batch = call("POST", f"/watchlists/{wid}/subjects/batch", op1, {"subjects": [
        {"display_name": "Anna Eshoo", "images_b64": [_b64(demo_person("Anna_Eshoo", 1))],
         **subject},
        {"display_name": "Nobody", "images_b64": [_faceless()], **subject}]})
    anna = next(r["subject_id"] for r in batch["results"] if r.get("subject_id"))
    call("POST", f"/watchlists/{wid}/authorise", op2)
    call("DELETE", f"/watchlists/{wid}/subjects/{anna}", op1)  # repacks the snapshot
    call("GET", f"/watchlists/{wid}", op1)
    call("GET", f"/watchlists/{wid}/audit", auditor)

    now = datetime.now(UTC)
    new = {"name": "n", "place": "p", "watchlist_id": wid, "cameras": ["cam-1"],
           "starts_at": (now - timedelta(minutes=1)).isoformat(),
           "ends_at": (now + timedelta(hours=1)).isoformat(), "target_fpir": 0.001,
           "authorising_officer": "o", "reason": "r"}
    did = call("POST", "/deployments", op1, new)["deployment_id"]
    officer = api.token("officer-1", ["officer"], [did])
    camera = api.token("cam-1", ["camera"], camera=f"{did}/cam-1")
    # The list bound elsewhere between its read and the binding: the new row is taken back.
    import chalicelib.ops.deployments as deployments_mod

    stale = deployments_mod.get_watchlist(rt.tables, wid)
    stale.status = "authorised"
    real = deployments_mod.get_watchlist
    deployments_mod.get_watchlist = lambda tables, w: stale  # type: ignore[assignment]
    try:
        call("POST", "/deployments", op1, new, status=409)
    finally:
        deployments_mod.get_watchlist = real  # type: ignore[assignment]
    call("GET", f"/deployments/{did}", op1)
    call("POST", f"/deployments/{did}/cameras/cam-1/grant", camera)
    call("POST", f"/deployments/{did}/cameras/cam-1/heartbeat", camera, _beat())
    call("GET", f"/deployments/{did}/cameras", officer)
    for platform in ("gcm", "apns"):
        call("POST", f"/deployments/{did}/devices", officer,
             {"officer_id": "officer-1", "platform": platform, "push_token": platform * 16})

    # A match, raised by the frames worker (not recorded): the alert routes' subject.
    face = jpeg(demo_person("Cory_Gardner", 2))
    rt.client("s3").put_object(
        Bucket=s.frames_bucket, Key=layout.batch_key(did, "cam-1", 0),
        Body=pack_batch(did, "cam-1", 0, [(datetime.now(UTC), face)]))
    local_stack["pump"].drain(timeout=120)
    [alert] = call("GET", f"/deployments/{did}/alerts", officer)
    aid = alert["alert_id"]
    call("GET", f"/alerts/{aid}", officer)
    call("POST", f"/alerts/{aid}/adjudication", officer, {"decision": "false_alert"})
    call("POST", f"/alerts/{aid}/outcome", officer, {"outcome": "not_engaged"})
    call("GET", f"/deployments/{did}/audit", auditor)
    call("GET", f"/deployments/{did}/record", auditor)
    call("GET", f"/deployments/{did}/record.html", auditor)
    call("POST", f"/deployments/{did}/end", op1)

    # The link key, read once per container where the stage has no LFR_LINK_SECRET.
    used.extend(_link_key_read(rt))

    stmts = policies._fill(policies.statements("api_handler", spec.build(s)), s.region, "*")
    assert ungranted(stmts, used) == []
    assert unused_grants(stmts, used) == []


def test_the_retention_sweep_is_granted_only_what_it_calls(scenario_factory, rt, local_stack,
                                                          monkeypatch) -> None:
    """Everything the sweep deletes, due at once: a deployment past its window with its list, an
    alert whose crop expired and the look-alike it was ruled, its sighting and track state, a
    list never bound, a dead-lettered batch's frames."""
    from chalice.test import Client

    from chalicelib.alerts.adjudication import adjudicate
    from chalicelib.ops.watchlists import create_watchlist

    s = rt.settings
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
    local_stack["pump"].drain(timeout=120)
    [alert] = sc.alerts()
    adjudicate(rt.tables, alert.alert_id, "false_alert", "officer-1")
    create_watchlist(rt.tables, "never bound", sc.rt.model_id, created_by="operator-1")
    rt.client("s3").put_object(Bucket=s.frames_bucket, Key=layout.batch_key("dep-x", "c", 1),
                               Body=b"held frames")
    later = datetime.now(UTC) + timedelta(days=s.crop_retention_days + 1)
    monkeypatch.setattr("chalicelib.store.tables.utcnow", lambda: later)
    with recording(s.region) as used, Client(local_stack["app"]) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        done = client.lambda_.invoke("retention_sweep", event).payload
    assert done["failures"] == 0 and done["watchlists_destroyed"] >= 1
    assert done["unbound_watchlists_destroyed"] >= 1 and done["crops_deleted"] >= 1
    assert done["sightings_deleted"] >= 1 and done["track_states_deleted"] >= 1
    assert done["dead_letter_frames_deleted"] >= 1 and done["lookalikes_forgotten"] >= 1

    stmts = policies._fill(policies.statements("retention_sweep", spec.build(s)), s.region, "*")
    assert ungranted(stmts, used) == []
    assert unused_grants(stmts, used) == []


def _compare(fn: str, s: Any, used: list[Use]) -> None:
    stmts = policies._fill(policies.statements(fn, spec.build(s)), s.region, "*")
    found = {"called, not granted": ungranted(stmts, used),
             "granted, never called": unused_grants(stmts, used)}
    assert not any(found.values()), f"{fn}: " + pprint.pformat(found, width=100)


def _phone(rt: Any, deployment_id: str, platform: str) -> str:
    """One more officer's phone on the deployment, on `platform` (gcm, apns)."""
    return register_device(rt.tables, rt.client("sns"),
                           names.platform_app_arn(rt.settings, platform), deployment_id,
                           f"officer-{platform}", platform, platform * 16)["endpoint_arn"]


def _send_and_drain(rt: Any, pump: Any, queue: str, body: str) -> None:
    rt.client("sqs").send_message(QueueUrl=rt.queue_url(queue), MessageBody=body)
    pump.drain(timeout=60)


@pytest.fixture(scope="module")
def stream(rt: Any, local_stack: dict[str, Any]) -> Functions:
    """The stream path, each queue consumer recorded on its own: a batch of a wanted person
    through to an alert and its pushes to a GCM and an APNS phone and the topic. On the way,
    what its code handles besides: the batch's first try failing after its alert landed (the
    retry finds the alert and reads it), the same S3 notification delivered again (the
    idempotency record answers), the next batch after the list's version moved with no current
    snapshot (the subject rows are read), a malformed batch and a malformed alert message that
    fail every try (each shortened retry, then the dead letter)."""
    from chalicelib.ingest.track_store import DynamoTrackStore

    s, pump = rt.settings, local_stack["pump"]
    sc = build_scenario(rt, str(local_stack["endpoint"]),
                        {"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    sc.devices.append(_phone(rt, sc.deployment_id, "apns"))
    names.reset()  # queue URLs as a fresh container resolves them
    save, failed = DynamoTrackStore.save, []

    def fails_once(self: Any, *a: Any, **k: Any) -> Any:
        if not failed:
            failed.append(True)
            raise RuntimeError("injected: the camera's state was not written")
        return save(self, *a, **k)

    with recording_functions(pump, s.region) as got, pytest.MonkeyPatch.context() as mp:
        mp.setattr(DynamoTrackStore, "save", fails_once)
        sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))] * 2)
        pump.drain(timeout=120)
        assert failed and len(sc.alerts()) == 1
        assert {p.endpoint_arn for p in sc.pushes()} == set(sc.devices)
        first = got.events["frames_worker"][0]["Records"][0]["body"]
        before = len(got.uses["frames_worker"])
        _send_and_drain(rt, pump, s.frames_queue, first)  # delivered again
        replay = got.uses["frames_worker"][before:]
        assert [u for u in replay if u[0].startswith("s3:")] == [], "not answered as a replay"
        W = rt.tables.Watchlist
        W(sc.watchlist_id).update(actions=[W.version.add(1)])  # the snapshot is stale now
        sc.upload(1, [base64.b64decode(_faceless())])
        pump.drain(timeout=60)
        sc.put_malformed(jpeg(demo_person("Cory_Gardner", 2)))
        pump.drain(timeout=60)
        _send_and_drain(rt, pump, s.alerts_queue, "not an alert")
    assert rt.tables.Deployment.get(sc.deployment_id).batches == 2
    sqs = rt.client("sqs")
    for q in (s.frames_queue, s.alerts_queue):
        url = rt.queue_url(dlq_name(q))
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "1", q
        sqs.purge_queue(QueueUrl=url)
    return got


def test_the_frames_worker_is_granted_only_what_its_code_calls(stream, rt) -> None:
    _compare("frames_worker", rt.settings, stream.uses["frames_worker"])


def test_the_alerts_notifier_is_granted_only_what_its_code_calls(stream, rt) -> None:
    s = rt.settings
    used = list(stream.uses["alerts_notifier"])
    # Its link key, read once per container at start-up where the stage has no LFR_LINK_SECRET.
    used.extend(_link_key_read(rt))
    _compare("alerts_notifier", s, used)


def test_the_camera_watch_is_granted_only_what_it_calls(scenario_factory, rt, local_stack,
                                                       monkeypatch) -> None:
    """A running deployment's camera dark long enough: pushed to a GCM and an APNS phone,
    recorded on the camera's row, audited."""
    from chalice.test import Client

    from chalicelib.store.tables import utcnow

    s = rt.settings
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    _phone(rt, sc.deployment_id, "apns")
    later = utcnow() + timedelta(seconds=s.camera_dark_push_s + 60)
    monkeypatch.setattr("chalicelib.store.tables.utcnow", lambda: later)
    with recording(s.region) as used, Client(local_stack["app"]) as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event",
                                                detail={}, resources=[])
        done = client.lambda_.invoke("camera_watch", event).payload
    assert done["pushes"] >= 2
    _compare("camera_watch", s, used)
