"""`lfr batch` on moto server: footage archived in S3 goes through the stream path's pipeline and
decisions and raises the same alerts, records and pushes."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.batch import cli as batch_cli
from chalicelib.batch.run import (
    BatchOptions,
    iter_timed_jpegs,
    parse_archive_key,
    process_archive,
)
from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from chalicelib.local.inspect import all_keys
from chalicelib.ops.cameras import camera_upload_grant
from tests.conftest import shared_data


def _jpegs(path: str, kind: str, opts: BatchOptions) -> list[bytes]:
    """The frames as the JPEG bytes the gateway would have uploaded."""
    return [data for _, data in iter_timed_jpegs(path, kind, opts)]


def _decisions(alerts: list[Any]) -> list[tuple[str, float, int]]:
    """What was decided, independent of when and by which path: (subject, score, frame)."""
    return sorted((a.display_name, round(float(a.score), 4), int(a.frame_index)) for a in alerts)


def test_batch_video_raises_the_stream_paths_alerts(scenario_factory, local_stack,
                                                    capsys) -> None:
    ref = shared_data("video", "lin-manuel-miranda.png")
    clip = shared_data("video", "short_hamilton_clip.mp4")
    stream = scenario_factory({"Lin-Manuel Miranda": [ref]}, devices=1)
    batch = scenario_factory({"Lin-Manuel Miranda": [ref]}, devices=1)
    rt, s = batch.rt, batch.rt.settings
    pump = local_stack["pump"]

    # The stream path: the gateway uploads 8-frame batches at 5 fps, the pump runs the worker.
    grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, stream.deployment_id,
                                stream.camera_id, s.max_batch_bytes)
    run_gateway(str(clip), PresignedUploader(grant), stream.deployment_id, stream.camera_id,
                GatewayOptions(fps=5, batch_frames=8))
    pump.drain(timeout=300)

    # The batch path: the clip archived under archive/<deployment>/<camera>/, `lfr batch`.
    key = f"archive/{batch.deployment_id}/{batch.camera_id}/short_hamilton_clip.mp4"
    # Footage time: the object's `recorded-at` metadata (here: now, inside the deployment's
    # authorised window, as the stream's frames are).
    recorded = datetime.now(UTC).replace(microsecond=0)
    rt.client("s3").put_object(Bucket=s.frames_bucket, Key=key, Body=clip.read_bytes(),
                               Metadata={"recorded-at": recorded.isoformat()})
    assert batch_cli.main(["batch", "--key", key, "--threads", "2"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    print(f"lfr batch: {report['frames']} frames in {report['seconds']} s "
          f"= {report['frames_per_s']} frames/s on {report['providers']}")
    assert report["frames"] >= 40 and report["chunks"] >= 5
    assert report["providers"][0] == "CPUExecutionProvider"  # no GPU here
    pump.drain(timeout=120)  # the alerts queue -> notifier -> pushes

    alerts = batch.alerts()
    assert alerts, "no alert for the enrolled person"
    assert {a.subject_id for a in alerts} == {batch.subjects["Lin-Manuel Miranda"]}
    assert sorted(report["alerts"]) == sorted(a.alert_id for a in alerts)
    # Same decisions as the stream path, frame for frame and score for score.
    assert _decisions(alerts) == _decisions(stream.alerts())
    # Same records: crop in the evidence bucket, threshold and model on the alert, one push each.
    crops = set(all_keys(rt.client("s3"), s.evidence_bucket))
    for a in alerts:
        assert a.crop_key in crops
        assert float(a.threshold) == s.match_threshold
        assert a.model_id == rt.pipeline.model_id
        assert recorded <= a.captured_at <= recorded + timedelta(seconds=30)
    pushes = batch.pushes()
    assert sorted(p.data["alert_id"] for p in pushes) == sorted(a.alert_id for a in alerts)
    deployment = rt.tables.Deployment.get(batch.deployment_id)
    assert deployment.frames == report["frames"]

    # Idempotent: the same archive again raises nothing new and pushes nothing new.
    again = process_archive(rt, s.frames_bucket, key)
    pump.drain(timeout=60)
    assert set(again.alerts) <= set(report["alerts"])
    assert len(batch.alerts()) == len(alerts)
    assert len(batch.pushes()) == len(pushes)


def test_archive_of_frames_is_read_in_name_order(tmp_path) -> None:
    clip = shared_data("video", "short_hamilton_clip.mp4")
    opts = BatchOptions(fps=5)
    video_frames = _jpegs(str(clip), "video", opts)[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, data in reversed(list(enumerate(video_frames))):
            zf.writestr(f"frames/{i:04d}.jpg", data)
        zf.writestr("notes.txt", b"not a frame")
    path = tmp_path / "frames.zip"
    path.write_bytes(buf.getvalue())
    assert _jpegs(str(path), "frames", opts) == video_frames


def test_archive_keys() -> None:
    k = parse_archive_key("archive/dep-1/cam-1/2026/11/clip.mp4")
    assert k is not None and (k.deployment_id, k.camera_id, k.name) == (
        "dep-1", "cam-1", "2026/11/clip.mp4")
    assert parse_archive_key("frames/dep-1/cam-1/x.lfrb") is None
    assert parse_archive_key("archive/dep 1/cam-1/x.mp4") is None
