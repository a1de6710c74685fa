"""A gateway restarted in the middle of a passing (issue 21, item 4), on moto server: the batches
of the first run still wait in the bucket (the worker has not got to them) when the second run
starts. Before, a restarted gateway counted from sequence 0 again and its first batches
overwrote those objects: frames of the passing were lost unseen. Now keys come from capture
time: nothing is overwritten, and the person who walked past across the restart alerts once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from chalicelib.ops.cameras import camera_upload_grant
from tests.gateway_walk import draw_walk
from tests.integration.conftest import demo_person

FPS = 2.0


def test_a_restart_mid_passing_overwrites_nothing_and_alerts_once(scenario_factory: Any,
                                                                  local_stack: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt, s = sc.rt, sc.rt.settings
    # 6 s of footage; the person is in view from 2 to 4 s; the gateway restarts at 3 s.
    draw_walk(tmp_path / "all", {"Cory_Gardner": 2.0}, 6, FPS, in_view=5)
    frames = sorted((tmp_path / "all").iterdir())
    halves = [tmp_path / "before", tmp_path / "after"]
    for half, part in zip(halves, (frames[:6], frames[6:]), strict=True):
        half.mkdir()
        for f in part:
            f.rename(half / f.name)
    grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, sc.deployment_id,
                                sc.camera_id, s.max_batch_bytes)
    start = datetime.now(UTC).replace(microsecond=0)
    sent = []
    for i, half in enumerate(halves):  # two runs of the gateway, the second a restart
        opts = GatewayOptions(fps=FPS, batch_frames=2, start=start + timedelta(seconds=3 * i))
        sent.append(run_gateway(str(half), PresignedUploader(grant), sc.deployment_id,
                                sc.camera_id, opts))
    keys = [k for report in sent for k in report.batches]
    listed = rt.client("s3").list_objects_v2(Bucket=s.frames_bucket,
                                             Prefix=f"frames/{sc.deployment_id}/")
    # Every batch of both runs is its own object: the restart overwrote nothing.
    assert len(keys) == len(set(keys)) == listed["KeyCount"] == 6
    local_stack["pump"].drain(timeout=120)
    alerts = sc.alerts()
    assert [a.display_name for a in alerts] == ["Cory Gardner"]  # one passing, one alert
