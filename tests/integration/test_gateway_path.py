"""Recorded footage through the real gateway keeps its own clock on the stream path (issue 10,
item 6a), against moto server: a watchlisted person who passes twice, 80 s apart in the footage,
raises two alerts, though the folder is read and sent in a second or two. Stamped when read,
both passings fell inside the 60 s re-alert window and the second alert was hidden."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from chalicelib.ops.cameras import camera_upload_grant
from tests.integration.conftest import demo_person

FPS = 1.0
GAP = 80  # frames, i.e. seconds of footage between the two passings: past the 60 s window


def _frame(face: np.ndarray | None, x: int) -> np.ndarray:
    canvas = np.full((360, 640, 3), 110, np.uint8)
    if face is not None:
        canvas[80:280, x : x + 160] = face
    return canvas


def test_two_passings_in_recorded_footage_are_two_alerts(scenario_factory, local_stack,
                                                        tmp_path) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt, s = sc.rt, sc.rt.settings
    assert s.realert_after_s < GAP / FPS
    face = cv2.resize(cv2.imread(str(demo_person("Cory_Gardner", 2))), (160, 200))
    folder = tmp_path / "footage"
    folder.mkdir()
    shots = [(i, face, 100 + 30 * i) for i in range(3)]  # first passing, frames 0-2
    shots += [(3 + GAP + i, face, 380 - 30 * i) for i in range(3)]  # second, 80 s later
    for i in range(3 + GAP + 3):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), _frame(None, 0))
    for i, img, x in shots:
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), _frame(img, x))

    start = datetime.now(UTC).replace(microsecond=0)
    grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, sc.deployment_id,
                                sc.camera_id, s.max_batch_bytes)
    report = run_gateway(str(folder), PresignedUploader(grant), sc.deployment_id, sc.camera_id,
                         GatewayOptions(fps=FPS, batch_frames=16, start=start))
    assert report.frames_sent == 3 + GAP + 3
    local_stack["pump"].drain(timeout=300)

    alerts = sorted(sc.alerts(), key=lambda a: a.captured_at)
    assert [a.display_name for a in alerts] == ["Cory Gardner", "Cory Gardner"], \
        [(a.display_name, a.captured_at) for a in alerts]
    first, second = (a.captured_at for a in alerts)
    assert start <= first <= start + timedelta(seconds=2)
    assert second - first >= timedelta(seconds=GAP)
