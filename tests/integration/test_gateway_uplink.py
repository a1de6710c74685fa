"""The camera gateway on a bad uplink (issue 21): a walk-by streamed at live pace through a proxy
that takes the link down for 20 s (refused, then black-holed, resetting and answering 503), slows
it, and refuses uploads' grants, against the real API over HTTP and moto server.

Before the gateway was rebuilt, the first refused connection ended it with a traceback. Now:
the gateway runs to the end of its source; every frame read is sent or shed under a reason;
every watchlisted person who passed while the link was up, or within the retry limit of its
return, alerts exactly once (and is pushed once); the one who passed early in the outage is
shed as "expired", and nobody else."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import requests

from chalicelib.auth import issue_local_token
from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from tests.gateway_walk import draw_walk, live_options, officer_get, walk_through_uplink
from tests.integration.conftest import demo_person
from tests.uplink_proxy import UplinkProxy

FPS = 2.0
SECONDS = 44
MAX_AGE_S = 10.0  # the retry limit, shortened from 120 s so that the outage outlasts it
# Who passes when (s into the clip); each is in view for 1.5 s.
PASSERS = {"Cory_Gardner": 2.0, "Barbara_Lee": 12.0, "Amy_Klobuchar": 22.0,
           "Anna_Eshoo": 32.5, "Adrian_Smith": 38.5}
# The uplink, from these times on. 8-28 s: a 20 s outage of four kinds.
UPLINK = [(8.0, "down"), (13.0, "blackhole"), (18.0, "reset"), (23.0, "503"), (28.0, "up"),
          (31.0, "slow"), (35.0, "up"), (37.5, "expire_grants"), (39.5, "up")]
# Barbara Lee passed 16 s before the link came back: past the 10 s limit, shed as expired.
# Amy Klobuchar passed 6 s before: within it, sent once the link was back.
EXPECTED = {"Cory Gardner", "Amy Klobuchar", "Anna Eshoo", "Adrian Smith"}


def test_a_20s_outage_loses_nobody_who_passed_within_the_retry_limit(
        scenario_factory: Any, local_stack: dict[str, Any], http_api: str, tmp_path: Path,
) -> None:
    sc = scenario_factory({n.replace("_", " "): [demo_person(n, 1)] for n in PASSERS})
    secret = local_stack["settings"].local_auth_secret
    draw_walk(tmp_path / "clip", PASSERS, SECONDS, FPS)
    report, seen = walk_through_uplink(tmp_path / "clip", http_api, secret, sc.deployment_id,
                                       sc.camera_id, UPLINK, live_options(FPS, MAX_AGE_S),
                                       tmp_path)
    local_stack["pump"].drain(timeout=300)

    s = report.summary
    # It ran to the end of its source, through every kind of fault.
    assert s["source_state"] == "ended"
    assert all(seen.get(mode) for mode in ("blackhole", "reset", "503", "slow",
                                           "expire_grants")), seen
    # Every frame is accounted for: sent, or shed with its reason.
    assert s["frames_read"] == SECONDS * FPS
    assert s["frames_read"] == s["frames_sent"] + s["frames_shed_total"], s
    assert set(s["frames_shed"]) == {"expired"}, s
    # Frames from the first ~10 s of the outage were past the limit when the link came back.
    assert 12 <= s["frames_shed"]["expired"] <= 28, s
    assert s["retries"] > 0 and s["grant_renewals"] >= 1, s
    # Each person who passed while the link was up, or within the limit, alerts exactly once.
    alerts = Counter(a.display_name for a in sc.alerts())
    assert alerts == dict.fromkeys(EXPECTED, 1), alerts
    pushed = Counter(p.data["alert_id"] for p in sc.pushes())
    assert sorted(pushed.values()) == [1] * len(EXPECTED), pushed

    # The API saw the camera's day: what it captured, and what never reached the worker.
    (cam,) = officer_get(http_api, secret, f"/deployments/{sc.deployment_id}/cameras")
    assert cam["camera_id"] == sc.camera_id
    assert cam["state"] == "dark"  # the gateway stopped: nobody is watching now
    assert cam["frames_captured"] == s["frames_read"]
    assert cam["frames_reached_worker"] == s["frames_sent"]
    assert cam["frames_lost_share"] == round(s["frames_shed_total"] / s["frames_read"], 4)
    assert cam["watching_s"] >= SECONDS - 1
    # ...and the deployment's transparency record gives the same denominator.
    record = officer_get(http_api, secret, f"/deployments/{sc.deployment_id}")
    assert record["camera_watch"] == [{k: cam[k] for k in (
        "camera_id", "watching_s", "frames_captured", "frames_reached_worker",
        "frames_lost_share")}]


def test_a_refused_connection_no_longer_ends_the_gateway(scenario_factory: Any, rt: Any,
                                                         tmp_path: Path) -> None:
    """The reported defect, in the old interface (a fixed grant): the link refuses connections
    for 3 s, 1 s into a live-paced folder. Before: the gateway raised at the first refused
    connection and sent nothing more. Now it retries and sends every frame."""
    from chalicelib.ops.cameras import camera_upload_grant

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=0)
    s = rt.settings
    grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, sc.deployment_id,
                                sc.camera_id, s.max_batch_bytes)
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(20):  # 4 s at 5 fps, no faces: the worker has nothing to look for
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), np.full((72, 128, 3), 8 * i, np.uint8))
    with UplinkProxy() as proxy:
        http = requests.Session()
        http.trust_env = False
        http.proxies = {"http": proxy.url}
        timer = threading.Timer(1.0, proxy.set, ("down",))
        back = threading.Timer(4.0, proxy.set, ("up",))
        timer.start()
        back.start()
        try:
            report = run_gateway(str(folder), PresignedUploader(grant, http), sc.deployment_id,
                                 sc.camera_id, GatewayOptions(fps=5, realtime=True,
                                                              start=datetime.now(UTC)))
        finally:
            timer.cancel()
            back.cancel()
            back.join()
        assert proxy.seen["up"] > 0
    assert report.frames_read == 20
    assert report.frames_sent == 20
    listed = rt.client("s3").list_objects_v2(Bucket=s.frames_bucket,
                                             Prefix=f"frames/{sc.deployment_id}/")
    assert len(report.batches) == listed["KeyCount"] > 0


def test_sigterm_flushes_within_its_bound_and_the_proxy_variables_are_honoured(
        scenario_factory: Any, local_stack: dict[str, Any], http_api: str, tmp_path: Path,
) -> None:
    """`lfr gateway` as the van runs it: its traffic goes through HTTP_PROXY (it is given the
    API's own address); when the link hangs and the service manager sends SIGTERM, it gives
    the queue --flush-s, sheds what is left as "shutdown", and exits 0 with the summary."""
    import json
    import os
    import signal
    import subprocess

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=0)
    token = tmp_path / "camera.token"
    token.write_text(issue_local_token(local_stack["settings"].local_auth_secret, "camera-1",
                                       ["camera"], camera=f"{sc.deployment_id}/{sc.camera_id}"))
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(100):  # 20 s at 5 fps, no faces
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), np.full((72, 128, 3), 2 * i, np.uint8))
    repo = Path(__file__).resolve().parents[2]

    def until(what: str, check: Any) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    with UplinkProxy() as proxy:
        env = {**os.environ, "HTTP_PROXY": proxy.url, "NO_PROXY": "",
               "LFR_GATEWAY_HEARTBEAT_S": "1"}
        gw = subprocess.Popen(
            [str(repo / ".venv" / "bin" / "lfr"), "gateway", str(folder), "--realtime",
             "--deployment", sc.deployment_id, "--camera", sc.camera_id, "--api", http_api,
             "--token-file", str(token), "--flush-s", "1"],
            env=env, stdout=subprocess.PIPE, text=True)
        try:
            until("grant, heartbeats and uploads through the proxy",
                  lambda: proxy.seen["up"] >= 6)
            proxy.set("blackhole")
            until("requests hanging on the dead link", lambda: proxy.seen["blackhole"] >= 2)
            gw.send_signal(signal.SIGTERM)
            out, _ = gw.communicate(timeout=30)
        finally:
            if gw.poll() is None:
                gw.kill()
    assert gw.returncode == 0
    s = json.loads(out.strip().splitlines()[-1])
    assert s["stopped_by"] == "signal"
    assert 0 < s["frames_read"] < 100
    assert s["frames_read"] == s["frames_sent"] + s["frames_shed_total"], s
    assert s["frames_sent"] > 0 and s["frames_shed"].get("shutdown", 0) > 0, s
