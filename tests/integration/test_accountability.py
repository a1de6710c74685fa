"""The accountability path end to end on the local stack, through the REST API: a watchlist
drafted by one operator and authorised by another, a deployment with a calibrated threshold, a
camera's upload, an alert pushed to an officer, adjudication and outcome, the transparency
record, the end of the deployment, the retention sweep, and the audit trail of all of it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from chalicelib.local.inspect import all_keys, delivered_pushes
from chalicelib.ops.retention import sweep
from chalicelib.store import layout
from tests.integration.conftest import demo_person
from tests.integration.kept import scan_items


def _b64(name: str, n: int) -> str:
    return base64.b64encode(demo_person(name, n).read_bytes()).decode()


def test_deployment_lifecycle_through_the_api(api, local_stack, tmp_path) -> None:
    rt = local_stack["rt"]
    s = rt.settings
    op1, op2 = api.token("operator-1", ["operator"]), api.token("operator-2", ["operator"])
    auditor = api.token("auditor-1", ["auditor"])

    # Drafted by one operator...
    wl = api.call("POST", "/watchlists", op1, {"name": "High St, 26 Nov"}).json_body
    wid = wl["watchlist_id"]
    for name in ("Cory_Gardner", "Barbara_Lee", "James_Risch"):
        resp = api.call("POST", f"/watchlists/{wid}/subjects", op1, {
            "display_name": name.replace("_", " "), "images_b64": [_b64(name, 1)],
            "source": "custody image 2026/123", "reason": "wanted on warrant W-1"})
        assert resp.status_code == 200, resp.body
        assert resp.json_body["image_quality"][0] > 0.1
    bad = api.call("POST", f"/watchlists/{wid}/subjects", op1, {
        "display_name": "x", "images_b64": [base64.b64encode(b"not an image").decode()],
        "source": "s", "reason": "r"})
    assert bad.status_code == 400 and "not a readable" in bad.json_body["Message"]
    # ...cannot be authorised by its author, nor used before authorisation...
    assert api.call("POST", f"/watchlists/{wid}/authorise", op1).status_code == 409
    now = datetime.now(UTC)
    dep_body = {"name": "High St", "place": "High St, north end", "watchlist_id": wid,
                "cameras": ["van-1"], "starts_at": (now - timedelta(minutes=5)).isoformat(),
                "ends_at": (now + timedelta(hours=2)).isoformat(), "target_fpir": 0.001,
                "authorising_officer": "Supt A. Smith", "reason": "violent offences, op X"}
    assert api.call("POST", "/deployments", op1, dep_body).status_code == 409
    # ...and is authorised by a second operator.
    assert api.call("POST", f"/watchlists/{wid}/authorise", op2).json_body["status"] == \
        "authorised"
    assert api.call("POST", f"/watchlists/{wid}/subjects", op1, {
        "display_name": "late", "images_b64": [_b64("Gwen_Moore", 1)], "source": "s",
        "reason": "r"}).status_code == 409  # no additions after authorisation

    dep = api.call("POST", "/deployments", op1, dep_body)
    assert dep.status_code == 200, dep.body
    dep = dep.json_body
    did = dep["deployment_id"]
    assert dep["watchlist_size"] == 3 and dep["target_fpir"] == 0.001
    assert 0.3 < dep["threshold"] < 0.9  # derived from the target, not typed in

    officer = api.token("officer-1", ["officer"], [did])
    assert api.call("POST", f"/deployments/{did}/devices", officer, {
        "officer_id": "officer-1", "platform": "gcm", "push_token": "officer-1-phone"
    }).status_code == 200

    # The camera fetches its grant and uploads: Cory Gardner walks past, with a stranger.
    camera = api.token("van-1", ["camera"], camera=f"{did}/van-1")
    grant = api.call("POST", f"/deployments/{did}/cameras/van-1/grant", camera).json_body
    import cv2
    import numpy as np

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        canvas = np.full((480, 800, 3), 120, np.uint8)
        for x, who in ((60 + 40 * i, "Cory_Gardner"), (520 - 30 * i, "Doug_Collins")):
            img = cv2.resize(cv2.imread(str(demo_person(who, 2))), (160, 200))
            canvas[140:340, x : x + 160] = img
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), canvas)
    run_gateway(str(frames), PresignedUploader(grant), did, "van-1",
                GatewayOptions(batch_frames=4))
    local_stack["pump"].drain(timeout=120)

    alerts = api.call("GET", f"/deployments/{did}/alerts", officer).json_body
    assert [a["subject"] for a in alerts] == ["Cory Gardner"]
    alert = alerts[0]
    assert alert["threshold"] == dep["threshold"] and alert["target_fpir"] == 0.001
    assert alert["score"] >= alert["threshold"]
    [push] = [p for p in delivered_pushes(local_stack["endpoint"])
              if p.data.get("deployment_id") == did]
    link = urlparse(push.data["link"])
    q = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert q["alert"] == alert["alert_id"]

    # The officer opens the push's link, compares the images, adjudicates, records the outcome.
    opened = api.call("GET", f"/alerts/{q['alert']}?exp={q['exp']}&sig={q['sig']}", officer)
    assert opened.status_code == 200
    assert opened.json_body["crop_url"] and opened.json_body["reference_url"]
    tampered = api.call("GET", f"/alerts/{q['alert']}?exp={int(q['exp']) + 999}&sig={q['sig']}",
                        officer)
    assert tampered.status_code == 410
    view = api.call("POST", f"/alerts/{q['alert']}/adjudication", officer,
                    {"decision": "true_alert", "note": "matches custody image"}).json_body
    assert (view["status"], view["adjudicated_by"]) == ("true_alert", "officer-1")
    assert api.call("POST", f"/alerts/{q['alert']}/adjudication", officer,
                    {"decision": "false_alert"}).status_code == 409
    view = api.call("POST", f"/alerts/{q['alert']}/outcome", officer,
                    {"outcome": "arrested"}).json_body
    assert view["outcome"] == "arrested"

    # The record reconciles with what happened.
    rec = api.call("GET", f"/deployments/{did}/record", auditor).json_body
    assert {k: rec[k] for k in ("alerts", "true_alerts", "false_alerts", "unadjudicated",
                                "engagements", "arrests", "watchlist_size")} == {
        "alerts": 1, "true_alerts": 1, "false_alerts": 0, "unadjudicated": 0,
        "engagements": 1, "arrests": 1, "watchlist_size": 3}
    assert rec["faces_seen"] >= 8 and rec["people_seen"] >= 2 and rec["frames"] == 4
    page = api.call("GET", f"/deployments/{did}/record.html", auditor)
    assert page.status_code == 200 and b"Arrests" in page.body

    # The deployment ends; the sweep destroys the watchlist; later the crop expires.
    assert api.call("POST", f"/deployments/{did}/end", op1).json_body["status"] == "ended"
    ends = datetime.now(UTC)
    done = sweep(rt.tables, rt.client("s3"), s.evidence_bucket, ends + timedelta(hours=2),
                 timedelta(hours=s.watchlist_grace_hours))
    assert done["subjects_destroyed"] >= 3
    assert api.call("GET", f"/watchlists/{wid}", op1).json_body["subjects"] == []
    subjects_table = f"{s.table_prefix}-subjects"
    assert not [i for i in scan_items(rt.client("dynamodb"), subjects_table)
                if i["watchlist_id"]["S"] == wid]
    refs = all_keys(rt.client("s3"), s.evidence_bucket)
    assert not [k for k in refs if k.startswith(f"{layout.REFERENCES_PREFIX}{wid}/")]
    crop = layout.crop_key(did, alert["alert_id"])
    assert crop in refs  # kept for its retention period
    sweep(rt.tables, rt.client("s3"), s.evidence_bucket, ends + timedelta(days=32),
          timedelta(hours=s.watchlist_grace_hours))
    assert crop not in all_keys(rt.client("s3"), s.evidence_bucket)
    assert api.call("GET", f"/alerts/{alert['alert_id']}", officer).json_body["crop_url"] is None

    # The audit trail shows every step.
    trail = api.call("GET", f"/deployments/{did}/audit", auditor).json_body
    actions = [e["action"] for e in trail]
    for step in ("deployment.created", "device.registered", "camera.grant", "alert.raised",
                 "alert.viewed", "alert.adjudicated", "alert.outcome", "record.generated",
                 "deployment.ended", "watchlist.destroyed", "crop.deleted"):
        assert step in actions, step
    wl_trail = [e["action"] for e in api.call("GET", f"/watchlists/{wid}/audit",
                                              auditor).json_body]
    assert wl_trail[:1] == ["watchlist.created"]
    assert wl_trail.count("subject.added") == 3 and "watchlist.authorised" in wl_trail
    by = {e["action"]: e["actor"] for e in trail}
    assert by["alert.adjudicated"] == "officer-1" and by["watchlist.destroyed"] == "retention-sweep"
