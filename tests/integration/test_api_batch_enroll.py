"""Enrollment through the REST API: many subjects per request within the API function's limits
(issue 12, item 1), the operator's choice of face (item 2), oversized images refused before
they are decoded (issue 11, A-7). Against moto server, through Chalice's HTTP test client."""

from __future__ import annotations

import base64
import time
from typing import Any

import cv2

from chalicelib.api import MAX_BATCH_IMAGES, MAX_BATCH_SUBJECTS, Api
from chalicelib.auth import Principal
from tests.integration.conftest import demo_person
from tests.unit.test_enrollment_rule import make_huge_png, pair_scene


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _person(name: str, n: int = 1) -> str:
    return _b64(demo_person(name, n).read_bytes())


def _pair() -> str:
    return _b64(cv2.imencode(".jpg", pair_scene())[1].tobytes())


def _subject(name: str, images: list[str], **kw: Any) -> dict[str, Any]:
    return {"display_name": name, "images_b64": images, "source": "test", "reason": "test",
            **kw}


def _draft(api: Any) -> tuple[str, str]:
    op = api.token("operator-1", ["operator"])
    return op, api.ok("POST", "/watchlists", op, {"name": "batch"})["watchlist_id"]


def test_a_batch_enrolls_each_subject_on_its_own(api, local_stack) -> None:
    op, wid = _draft(api)
    body = {"subjects": [
        _subject("Cory Gardner", [_person("Cory_Gardner")]),
        _subject("Not Base64", ["%%%"]),
        _subject("Not An Image", [_b64(b"GIF89a nothing here")]),
        _subject("Nancy Pelosi", [_pair()], faces=[[240, 50, 350, 210]]),
        _subject("Someone", [_pair()]),  # two people, no choice made
    ]}
    out = api.ok("POST", f"/watchlists/{wid}/subjects/batch", op, body)
    status = [r["status"] for r in out["results"]]
    assert status == ["enrolled", "refused", "refused", "enrolled", "refused"]
    assert "base64" in out["results"][1]["reason"]
    assert out["results"][2]["images"][0]["code"] == "not_an_image"
    assert out["results"][4]["images"][0]["code"] == "ambiguous"
    assert "choose one by index or box" in out["results"][4]["reason"]
    assert out["enrolled"] == 2 and out["refused"] == 3
    x1, _, x2, _ = out["results"][3]["faces"][0]
    assert x1 > 200  # the right-hand face, as chosen
    names = [s["display_name"] for s in api.ok("GET", f"/watchlists/{wid}", op)["subjects"]]
    assert sorted(names) == ["Cory Gardner", "Nancy Pelosi"]
    # The same request again (a client retrying after a timeout) enrolls no one twice.
    again = api.ok("POST", f"/watchlists/{wid}/subjects/batch", op, body)
    assert again["results"][0]["status"] == again["results"][3]["status"] == "already_enrolled"
    assert again["results"][0]["subject_id"] == out["results"][0]["subject_id"]
    assert len(api.ok("GET", f"/watchlists/{wid}", op)["subjects"]) == 2


def test_a_batch_over_the_limits_is_refused_whole(api, local_stack) -> None:
    op, wid = _draft(api)
    one = _subject("x", [_person("Cory_Gardner")])
    path = f"/watchlists/{wid}/subjects/batch"
    resp = api.call("POST", path, op, {"subjects": [one] * (MAX_BATCH_SUBJECTS + 1)})
    assert resp.status_code == 400 and "subjects" in resp.json_body["Message"]
    many = _subject("x", [_person("Cory_Gardner")] * 10)
    resp = api.call("POST", path, op, {"subjects": [many] * (MAX_BATCH_IMAGES // 10 + 1)})
    assert resp.status_code == 400 and "per request" in resp.json_body["Message"]
    resp = api.call("POST", path, op, {"subjects": [{**one, "faces": [None, None]}]})
    assert resp.status_code == 400 and "2 choices for 1 images" in resp.json_body["Message"]
    officer = api.token("officer-1", ["officer"])
    assert api.call("POST", path, officer, {"subjects": [one]}).status_code == 403
    assert api.ok("GET", f"/watchlists/{wid}", op)["subjects"] == []


def test_subjects_the_time_left_would_not_cover_come_back_not_processed(local_stack) -> None:
    api = Api(local_stack["rt"])
    op = Principal("operator-1", frozenset({"operator"}))
    from chalicelib.ops.watchlists import create_watchlist

    wid = create_watchlist(api.tables, "budget", api.rt.model_id, created_by="operator-1")
    clock = iter([10.0, 2.0, 2.0])  # seconds left, asked before each subject
    out = api.add_subjects(op, wid, lambda: next(clock), {"subjects": [
        _subject("Cory Gardner", [_person("Cory_Gardner")]),
        _subject("John McCain", [_person("John_McCain")]),
        _subject("Nancy Pelosi", [_person("Nancy_Pelosi")])]})
    assert [r["status"] for r in out["results"]] == ["enrolled", "not_processed",
                                                     "not_processed"]
    assert [r["index"] for r in out["results"]] == [0, 1, 2]


def test_the_single_route_takes_a_face_choice_and_refuses_huge_images(api, local_stack) -> None:
    op, wid = _draft(api)
    path = f"/watchlists/{wid}/subjects"
    resp = api.call("POST", path, op, _subject("Someone", [_pair()]))
    assert resp.status_code == 400 and "choose one by index or box" in resp.json_body["Message"]
    ok = api.ok("POST", path, op, _subject("Nancy Pelosi", [_pair()], faces=[[240, 50, 350, 210]]))
    assert ok["faces"][0][0] > 200
    huge = _subject("Huge", [_b64(make_huge_png())])  # 0.25 MB; 768 MB decoded
    t0 = time.process_time()
    resp = api.call("POST", path, op, huge)
    assert resp.status_code == 400 and "megapixels" in resp.json_body["Message"]
    assert time.process_time() - t0 < 1.0  # decoding it took 3.5 CPU-s (and 1.4 GB)
