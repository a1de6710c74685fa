"""Each function of app.py builds only what it uses from the runtime they share
(chalicelib/runtime.py): the API and the scheduled sweeps never build the frames worker's
watchlist index cache or batch reader, nor cap numpy's BLAS threads; the worker's first use
does all three."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.test import Client

from tests.integration.conftest import demo_person

WORKER_STATE = {"index_cache", "batch_reader"}


def test_the_api_and_the_sweeps_build_none_of_the_frames_worker_s_state(
        local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from chalicelib import runtime as runtime_module
    from chalicelib.local.api_client import ApiClient
    from chalicelib.local.pump import load_app

    s = local_stack["settings"]
    fresh = runtime_module.Runtime(s)
    monkeypatch.setattr(runtime_module, "runtime", lambda _=None: fresh)
    capped: list[int] = []
    monkeypatch.setattr("chalicelib.matching.blas.limit_blas_threads",
                        lambda n: capped.append(n) or n)
    app = load_app()  # a module of its own, bound to the fresh runtime
    with Client(app) as http:
        api = ApiClient(http, s.local_auth_secret)
        op1, op2 = api.token("operator-1", ["operator"]), api.token("operator-2", ["operator"])
        wid = api.ok("POST", "/watchlists", op1, {"name": "runtime scope"})["watchlist_id"]
        image = demo_person("Cory_Gardner", 1).read_bytes()
        api.ok("POST", f"/watchlists/{wid}/subjects", op1, {
            "display_name": "Cory Gardner", "images_b64": [base64.b64encode(image).decode()],
            "source": "test", "reason": "test"})
        api.ok("POST", f"/watchlists/{wid}/authorise", op2)
        api.ok("GET", f"/watchlists/{wid}", op1)
        tick = http.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
        for scheduled in ("retention_sweep", "camera_watch"):
            http.lambda_.invoke(scheduled, tick)
    assert "pipeline" in vars(fresh)  # the API enrolled through it
    assert not WORKER_STATE & vars(fresh).keys() and capped == []
    assert fresh.index_cache is fresh.index_cache and fresh.batch_reader is not None
    assert vars(fresh).keys() >= WORKER_STATE and capped == [s.blas_threads]
