"""Security of the REST API and of camera uploads, against the app and moto server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.store import layout
from tests.integration.conftest import demo_person, jpeg, log_records

OPEN = {"/health", "/console"}  # /console is the page shell: no data, every call it makes is authed


def _paths(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for path, methods in app.routes.items():
        for method in methods:
            out.append((method, path.replace("{", "x-").replace("}", "")))
    return out


def test_every_route_but_health_needs_a_token(api, local_stack) -> None:
    routes = _paths(local_stack["app"])
    assert len(routes) >= 15
    for method, path in routes:
        resp = api.call(method, path, body={} if method in ("POST", "PUT") else None)
        if path in OPEN:
            assert resp.status_code == 200, path
        else:
            assert resp.status_code == 401, (method, path, resp.status_code)


def test_bad_expired_and_forged_tokens_are_refused(api) -> None:
    expired = api.token("operator-1", ["operator"], ttl_s=60, now=time.time() - 3600)
    resp = api.call("GET", "/watchlists/wl-x", expired)
    assert resp.status_code == 401 and "expired" in resp.json_body["Message"]
    from chalicelib.auth import issue_local_token

    forged = issue_local_token("not-the-secret-" * 3, "operator-1", ["operator"])
    assert api.call("GET", "/watchlists/wl-x", forged).status_code == 401
    assert api.call("GET", "/watchlists/wl-x", "garbage").status_code == 401


@pytest.fixture
def two_deployments(scenario_factory):  # type: ignore[no-untyped-def]
    a = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    b = scenario_factory({"Gwen Moore": [demo_person("Gwen_Moore", 1)]})
    a.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
    b.upload(0, [jpeg(demo_person("Gwen_Moore", 2))])
    a.rt  # noqa: B018
    return a, b


def test_roles_and_assignment(api, two_deployments, local_stack) -> None:
    a, b = two_deployments
    local_stack["pump"].drain(timeout=120)
    [alert_a] = a.alerts()
    [alert_b] = b.alerts()
    officer_a = api.token("officer-a", ["officer"], [a.deployment_id])
    camera_a = api.token("cam", ["camera"], camera=f"{a.deployment_id}/cam-1")
    auditor = api.token("auditor-1", ["auditor"])
    operator = api.token("operator-1", ["operator"])

    # Wrong role: 403.
    assert api.call("POST", "/watchlists", officer_a, {"name": "x"}).status_code == 403
    assert api.call("GET", f"/deployments/{a.deployment_id}/alerts", camera_a).status_code == 403
    assert api.call("POST", f"/alerts/{alert_a.alert_id}/adjudication", operator,
                    {"decision": "true_alert"}).status_code == 403
    assert api.call("GET", f"/deployments/{a.deployment_id}/audit", officer_a).status_code == 403
    assert api.call("GET", f"/deployments/{a.deployment_id}/audit", auditor).status_code == 200
    # Officer of deployment A on deployment B's alerts: 403, and nothing changes.
    assert api.call("GET", f"/deployments/{b.deployment_id}/alerts", officer_a).status_code == 403
    assert api.call("GET", f"/alerts/{alert_b.alert_id}", officer_a).status_code == 403
    assert api.call("POST", f"/alerts/{alert_b.alert_id}/adjudication", officer_a,
                    {"decision": "false_alert"}).status_code == 403
    assert b.rt.tables.Alert.get(alert_b.alert_id).status == "alert"
    # ...while their own deployment works.
    resp = api.call("GET", f"/deployments/{a.deployment_id}/alerts", officer_a)
    assert [x["alert_id"] for x in resp.json_body] == [alert_a.alert_id]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"officer_id": "o1", "platform": "fax", "push_token": "x" * 12}, "platform"),
        ({"officer_id": "o1", "platform": "gcm"}, "push_token"),
        ({"officer_id": "o1", "platform": "gcm", "push_token": "t" * 12, "x": 1}, "x"),
        ({}, "officer_id"),
    ],
)
def test_bad_bodies_get_a_400_that_says_what_is_wrong(api, body, says) -> None:
    operator = api.token("operator-1", ["operator"])
    resp = api.call("POST", "/deployments/dep-x/devices", operator, body)
    assert resp.status_code == 400
    assert says in resp.json_body["Message"]
    resp = api.call("POST", "/deployments", operator, {"name": "x", "target_fpir": 0.5})
    assert resp.status_code == 400 and "target_fpir" in resp.json_body["Message"]
    assert "watchlist_id" in resp.json_body["Message"]


def test_unknown_deployment_is_404(api) -> None:
    operator = api.token("operator-1", ["operator"])
    resp = api.call("POST", "/deployments/dep-nope/devices", operator,
                    {"officer_id": "o1", "platform": "gcm", "push_token": "t" * 12})
    assert resp.status_code == 404


def test_camera_grants_only_for_own_prefix_and_while_running(api, scenario_factory) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    own = api.token("cam", ["camera"], camera=f"{sc.deployment_id}/cam-1")
    other = api.token("cam", ["camera"], camera=f"{sc.deployment_id}/cam-2")
    grant = api.call("POST", f"/deployments/{sc.deployment_id}/cameras/cam-1/grant", own)
    assert grant.status_code == 200
    assert grant.json_body["prefix"] == layout.camera_prefix(sc.deployment_id, "cam-1")
    conditions = str(grant.json_body["fields"])
    assert grant.json_body["expires_s"] <= 3600 and "policy" in conditions
    assert api.call("POST", f"/deployments/{sc.deployment_id}/cameras/cam-1/grant",
                    other).status_code == 403
    operator = api.token("operator-1", ["operator"])
    api.call("POST", f"/deployments/{sc.deployment_id}/end", operator)
    assert api.call("POST", f"/deployments/{sc.deployment_id}/cameras/cam-1/grant",
                    own).status_code == 403


def test_worker_refuses_what_a_camera_may_not_send(scenario_factory, local_stack, caplog) -> None:
    """moto server accepts any presigned POST (it does not evaluate POST policies), so the
    worker's own checks are what holds locally, and a second line of defence on AWS."""
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    from chalicelib.ingest.batch_format import pack_batch

    face = jpeg(demo_person("Cory_Gardner", 2))
    # 1. A batch that claims another camera's identity under this camera's prefix.
    body = pack_batch(sc.deployment_id, "cam-9", 0, [(datetime.now(UTC), face)])
    key = layout.batch_key(sc.deployment_id, "cam-1", 0)
    rt.client("s3").put_object(Bucket=rt.settings.frames_bucket, Key=key, Body=body)
    # 2. Frames captured outside the deployment's window (a day before it started).
    before = datetime.now(UTC) - timedelta(days=1)
    body = pack_batch(sc.deployment_id, "cam-1", 1, [(before, face)])
    key2 = layout.batch_key(sc.deployment_id, "cam-1", 1)
    caplog.clear()
    rt.client("s3").put_object(Bucket=rt.settings.frames_bucket, Key=key2, Body=body)
    local_stack["pump"].drain(timeout=120)
    rejected = [x for x in log_records(caplog, "batch rejected") if x["key"] == key]
    assert rejected and "cam-9" in rejected[0]["reason"]
    done = [x for x in log_records(caplog, "batch processed") if x["key"] == key2]
    assert done[0]["frames_skipped"] == {"outside_window": 1} and done[0]["faces_seen"] == 0
    assert sc.alerts() == []


def test_a_camera_grant_s_policy_document_holds_its_limits(api, scenario_factory, rt) -> None:
    """What S3 enforces on AWS is the grant's signed policy document: checked here, in CI
    (moto server does not evaluate POST policies): the bucket, the camera's own prefix and
    nothing wider, the batch size limit, an expiry no later than the grant says, and a
    signature that covers exactly this document."""
    import base64
    import hashlib
    import hmac
    import json
    from datetime import UTC, datetime, timedelta

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    own = api.token("cam", ["camera"], camera=f"{sc.deployment_id}/cam-1")
    asked = datetime.now(UTC)
    grant = api.ok("POST", f"/deployments/{sc.deployment_id}/cameras/cam-1/grant", own)
    fields, prefix = grant["fields"], layout.camera_prefix(sc.deployment_id, "cam-1")
    assert grant["prefix"] == prefix and prefix.endswith("/cam-1/")
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    s = rt.settings
    assert {"bucket": s.frames_bucket} in conditions
    assert ["starts-with", "$key", prefix] in conditions
    assert ["content-length-range", 1, s.max_batch_bytes] in conditions
    # Nothing else widens it: no other key or bucket condition, no second size range
    # (botocore adds the key's starts-with for `${filename}` again: the same one).
    assert {tuple(c) for c in conditions if isinstance(c, list)} == {
        ("starts-with", "$key", prefix), ("content-length-range", 1, s.max_batch_bytes)}
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert expires <= asked + timedelta(seconds=grant["expires_s"] + 5)
    assert grant["expires_s"] <= 3600
    # The signature (SigV4 POST) is over this document, with the API role's key.
    akid, date, region, service, _ = fields["x-amz-credential"].split("/")
    secret = rt.client("s3")._request_signer._credentials.get_frozen_credentials().secret_key
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, fields["policy"].encode(), hashlib.sha256).hexdigest() == \
        fields["x-amz-signature"]
