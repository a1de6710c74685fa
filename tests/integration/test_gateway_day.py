"""A deployment day in a minute (issue 21): `lfr gateway` on a real RTSP camera, as the camera's
own principal against the API over HTTP, with grants that live 4 s (LFR_GRANT_TTL_S) and a
heartbeat every second (LFR_GATEWAY_HEARTBEAT_S). It runs across at least five grant renewals
and one restart of the RTSP server, with no intervention: the API sees the camera go dark and
come back, every watchlisted person in view alerts exactly once, SIGTERM ends it with exit 0
and a JSON summary in which every frame is accounted for.

The camera serves scenes drawn here (MJPEG, looping every 8 s): three watchlisted people pass
in each loop. The re-alert window (60 s) is longer than the test, so a person seen again in a
later loop, before or after the restart, continues their alert: exactly one each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from chalicelib.auth import issue_local_token
from tests.integration.conftest import demo_person
from tests.rtsp_camera import RtspCamera, rtsp_available

REPO = Path(__file__).resolve().parents[2]
FPS = 3.0  # a camera at 3 fps: what matters here is time, not frames
LOOP_S = 8
PASSERS = {"Cory_Gardner": 0.5, "Barbara_Lee": 3.0, "Amy_Klobuchar": 5.5}

pytestmark = pytest.mark.skipif(rtsp_available(frames_only=True) is not None,
                                reason=str(rtsp_available(frames_only=True)))


def _scenes(folder: Path) -> None:
    folder.mkdir()
    faces = {n: cv2.resize(cv2.imread(str(demo_person(n, 2))), (160, 200)) for n in PASSERS}
    for i in range(int(LOOP_S * FPS)):
        t = i / FPS
        canvas = np.full((360, 640, 3), 110, np.uint8)
        for name, at in PASSERS.items():
            step = round((t - at) * FPS)
            if 0 <= step < 4:
                x = 80 + 100 * step
                canvas[80:280, x:x + 160] = faces[name]
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), canvas)


def _api_process(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.http_api"], cwd=REPO,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until it serves (or exits: empty line)
    assert line.startswith("ready "), line
    return proc, line.split()[1]


def _until(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    """Polls a condition the system can be asked (the API's view of the camera)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    _scenes(tmp_path / "scenes")
    with RtspCamera(frames=tmp_path / "scenes", fps=FPS) as cam:
        yield cam


def test_a_day_of_renewals_and_a_camera_restart_loses_no_alert(
        scenario_factory: Any, local_stack: dict[str, Any], camera: RtspCamera,
        tmp_path: Path) -> None:
    sc = scenario_factory({n.replace("_", " "): [demo_person(n, 1)] for n in PASSERS})
    secret = local_stack["settings"].local_auth_secret
    token = tmp_path / "camera.token"
    token.write_text(issue_local_token(secret, "camera-1", ["camera"],
                                       camera=f"{sc.deployment_id}/{sc.camera_id}"))
    operator = {"Authorization": f"Bearer {issue_local_token(secret, 'op-1', ['operator'])}"}
    env = {**os.environ, "LFR_GRANT_TTL_S": "4", "LFR_GATEWAY_HEARTBEAT_S": "1"}
    api, url = _api_process(env)
    gateway = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "lfr"), "gateway", camera.url, "--deployment",
         sc.deployment_id, "--camera", sc.camera_id, "--api", url, "--token-file", str(token),
         "--fps", str(FPS)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        def cam() -> dict[str, Any]:
            got = requests.get(f"{url}/deployments/{sc.deployment_id}/cameras",
                               headers=operator, timeout=10).json()
            return got[0]

        _until("the camera live, a whole loop captured",
               lambda: cam()["state"] == "live" and cam()["frames_captured"] >= LOOP_S * FPS,
               60)
        camera.stop()  # the camera drops mid-stream
        dark = _until("the API sees the camera dark", lambda: cam()["state"] == "dark"
                      and cam(), 30)
        before = dark["frames_captured"]
        camera.start()  # ...and comes back on the same URL, with no intervention
        back = _until("live again, a whole loop captured since, five grant renewals",
                      lambda: (c := cam())["state"] == "live" and c["reconnects"] >= 1
                      and c["frames_captured"] >= before + LOOP_S * FPS
                      and c["grant_renewals"] >= 5 and c, 90)
        gateway.send_signal(signal.SIGTERM)
        out, _ = gateway.communicate(timeout=60)
    finally:
        if gateway.poll() is None:
            gateway.kill()
        assert api.stdin is not None
        api.stdin.close()
        api.wait(timeout=30)
    assert gateway.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    local_stack["pump"].drain(timeout=300)

    assert summary["stopped_by"] == "signal"
    assert summary["frames_read"] == summary["frames_sent"] + summary["frames_shed_total"]
    assert summary["frames_shed"] == {}, summary  # a good uplink: nothing shed, nothing left
    assert summary["reconnects"] >= 1 and summary["grant_renewals"] >= 5, summary
    assert back["since"] > dark["since"]
    alerts = Counter(a.display_name for a in sc.alerts())
    assert alerts == {n.replace("_", " "): 1 for n in PASSERS}, alerts
