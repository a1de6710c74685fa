"""A walk-by for a camera gateway on a bad uplink, shared by the uplink test
(tests/integration/test_gateway_uplink.py) and the fault-case table
(benchmarks/gateway_faults.py): watchlisted people drawn passing a camera at known times, and
one gateway streaming it at live pace through an UplinkProxy whose faults follow a plan."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import requests

from chalicelib.auth import issue_local_token
from chalicelib.gateway import GatewayOptions, GatewayReport, PresignedUploader, run_gateway
from chalicelib.gateway.grants import ApiGrants, TokenFile
from chalicelib.gateway.heartbeat import Heartbeat
from chalicelib.gateway.stats import GatewayStats
from tests.uplink_proxy import UplinkProxy

PEOPLE = Path(__file__).resolve().parents[1] / "demo" / "people"


def draw_walk(folder: Path, passers: dict[str, float], seconds: float, fps: float,
              in_view: int = 3) -> None:
    """640x360 frames at `fps`: each person (a demo/people name, their photo 2) crosses left to
    right in `in_view` frames from their time on."""
    folder.mkdir()
    faces = {n: cv2.resize(cv2.imread(str(PEOPLE / n / "2.jpg")), (160, 200)) for n in passers}
    for i in range(int(seconds * fps)):
        t = i / fps
        canvas = np.full((360, 640, 3), 110, np.uint8)
        for name, at in passers.items():
            step = round((t - at) * fps)
            if 0 <= step < in_view:
                x = 100 + (360 // max(1, in_view - 1)) * step
                canvas[80:280, x:x + 160] = faces[name]
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), canvas)


def _follow(proxy: UplinkProxy, plan: list[tuple[float, str]], began: float,
            done: threading.Event) -> None:
    for at, mode in plan:
        if done.wait(max(0.0, began + at - time.monotonic())):
            return
        proxy.set(mode)


def walk_through_uplink(folder: Path, api: str, secret: str, deployment_id: str,
                        camera_id: str, plan: list[tuple[float, str]], opts: GatewayOptions,
                        token_dir: Path) -> tuple[GatewayReport, dict[str, int]]:
    """Streams `folder` at live pace as the camera's principal (grant from the API, renewed;
    heartbeats), all of it through its own proxy, whose mode follows `plan` ((seconds from the
    start, mode), ...). Returns the gateway's report and the proxy's requests by mode."""
    token = token_dir / f"{camera_id}.token"
    token.write_text(issue_local_token(secret, f"camera-{camera_id}", ["camera"],
                                       camera=f"{deployment_id}/{camera_id}"))
    opts.start = opts.start or datetime.now(UTC)
    stats = GatewayStats()
    done = threading.Event()
    with UplinkProxy(delay_s=0.5) as proxy:
        http = requests.Session()
        http.trust_env = False
        http.proxies = {"http": proxy.url}  # this gateway's own uplink
        grants = ApiGrants(api, deployment_id, camera_id, TokenFile(token), http,
                           time.monotonic, on_renewal=lambda: stats.add(grant_renewals=1),
                           timeout_s=opts.upload_timeout_s)
        beat = Heartbeat(api, deployment_id, camera_id, TokenFile(token), http, stats,
                         opts.heartbeat_s, timeout_s=opts.upload_timeout_s)
        follower = threading.Thread(target=_follow, args=(proxy, plan, time.monotonic(), done))
        follower.start()
        try:
            report = run_gateway(str(folder), PresignedUploader(grants, http,
                                                                opts.upload_timeout_s),
                                 deployment_id, camera_id, opts, stats=stats, heartbeat=beat)
        finally:
            done.set()
            follower.join()
        return report, dict(proxy.seen)


def live_options(fps: float, max_age_s: float) -> GatewayOptions:
    """A live-paced gateway with short timeouts and backoff, for runs of a minute."""
    return GatewayOptions(fps=fps, realtime=True, max_age_s=max_age_s, upload_timeout_s=2.0,
                          retry_max_s=1.0, heartbeat_s=1.0)


def officer_get(api: str, secret: str, path: str) -> Any:
    token = issue_local_token(secret, "operator-1", ["operator"])
    return requests.get(f"{api}{path}", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()
