"""Hostile bodies, ids and parameters through the REST API (issue 11, A-1 to A-6): each gets a
4xx that says what is wrong, never a 500, and the token is checked before the body is read."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import demo_person

POSTS_WITH_BODY = ["/watchlists", "/watchlists/wl-x/subjects", "/watchlists/wl-x/subjects/batch",
                   "/deployments", "/deployments/dep-x/devices",
                   "/deployments/dep-x/cameras/cam-x/heartbeat", "/alerts/al-x/adjudication",
                   "/alerts/al-x/outcome"]


def _raw(api: Any, path: str, token: str | None, raw: str) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return api.client.http.post(path, headers=headers, body=raw)


def test_the_token_is_checked_before_the_body_is_read(api) -> None:
    op = api.token("operator-1", ["operator"])
    nested = "[" * 100_000 + "]" * 100_000
    for path in POSTS_WITH_BODY:
        assert _raw(api, path, None, "{not json").status_code == 401, path
        assert _raw(api, path, None, nested).status_code == 401, path
        resp = _raw(api, path, op, nested)
        assert resp.status_code == 400, (path, resp.status_code, resp.body[:200])
        assert "JSON" in resp.json_body["Message"]


def test_a_link_signature_that_is_not_ascii_is_refused(api) -> None:
    officer = api.token("officer-1", ["officer"], ["dep-x"])
    resp = api.call("GET", "/alerts/al-x?exp=9999999999&sig=%C3%A9", officer)
    assert 400 <= resp.status_code < 500, resp.status_code


def _authorised_watchlist(api: Any) -> str:
    op1, op2 = api.token("operator-1", ["operator"]), api.token("operator-2", ["operator"])
    wid = api.ok("POST", "/watchlists", op1, {"name": "hostile"})["watchlist_id"]
    image = base64.b64encode(demo_person("Cory_Gardner", 1).read_bytes()).decode()
    api.ok("POST", f"/watchlists/{wid}/subjects", op1, {
        "display_name": "Cory Gardner", "images_b64": [image], "source": "s", "reason": "r"})
    api.ok("POST", f"/watchlists/{wid}/authorise", op2)
    return wid


def _deployment(wid: str, **over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"name": "n", "place": "p", "watchlist_id": wid, "cameras": ["cam-1"],
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(), "target_fpir": 0.001,
            "authorising_officer": "o", "reason": "r", **over}


def test_bad_deployment_requests_get_4xx(api, local_stack) -> None:
    op = api.token("operator-1", ["operator"])
    resp = api.call("POST", "/deployments", op, _deployment(""))
    assert resp.status_code == 400 and "watchlist_id" in resp.json_body["Message"]
    wid = _authorised_watchlist(api)
    resp = api.call("POST", "/deployments", op, _deployment(wid, target_fpir=1e-300))
    assert resp.status_code == 400 and "target_fpir" in resp.json_body["Message"]
    first = api.call("POST", "/deployments", op, _deployment(wid, deployment_id="dep-twice"))
    assert first.status_code == 200, first.body
    wid2 = _authorised_watchlist(api)
    again = api.call("POST", "/deployments", op, _deployment(wid2, deployment_id="dep-twice"))
    assert again.status_code == 409, (again.status_code, again.body[:200])


def test_a_phone_registered_by_a_second_officer(api, local_stack) -> None:
    op = api.token("operator-1", ["operator"])
    did = api.ok("POST", "/deployments", op, _deployment(_authorised_watchlist(api)))[
        "deployment_id"]
    body = {"platform": "gcm", "push_token": "shared-phone-token-1"}
    for officer in ("officer-1", "officer-2"):  # a shared phone handed to the next shift
        token = api.token(officer, ["officer"], [did])
        resp = api.call("POST", f"/deployments/{did}/devices", token,
                        {**body, "officer_id": officer})
        assert resp.status_code == 200, (officer, resp.status_code, resp.body[:200])
