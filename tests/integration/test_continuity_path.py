"""Tracks across a camera's batches on the real AWS API (moto server): batches out of order,
and a batch retried after its state had landed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np

from chalicelib.gateway import GatewayOptions, encode, iter_frames
from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.continuity import TRACK_TTL_S, CameraTracks, CarriedTrack
from chalicelib.ingest.decide import camera_context, decide_and_alert
from tests.conftest import shared_data
from tests.integration.conftest import demo_person


def test_clip_sent_out_of_order_is_still_one_passing_one_alert(scenario_factory,
                                                               local_stack) -> None:
    ref = shared_data("video", "lin-manuel-miranda.png")
    clip = shared_data("video", "short_hamilton_clip.mp4")
    sc = scenario_factory({"Lin-Manuel Miranda": [ref]}, devices=1)
    opts = GatewayOptions(fps=5)
    start = datetime.now(UTC)
    frames = [encode(f, opts) for f in iter_frames(str(clip), opts)]
    batches = [list(range(i, min(len(frames), i + 3))) for i in range(0, len(frames), 3)]
    # Standard SQS keeps no order: the last batch first, then the rest shuffled.
    order = [len(batches) - 1, *np.random.default_rng(0).permutation(len(batches) - 1)]
    for seq in order:
        sc.upload(int(seq), [frames[i] for i in batches[seq]],
                  at=start + timedelta(seconds=batches[seq][0] / opts.fps))
    local_stack["pump"].drain(timeout=300)

    alerts = sc.alerts()
    assert [a.subject_id for a in alerts] == [sc.subjects["Lin-Manuel Miranda"]]
    dep = sc.rt.tables.Deployment.get(sc.deployment_id)
    assert dep.batches == len(batches) and dep.frames == len(frames)
    # Two men and a cut in the footage: a handful of passings, not one per batch; each is
    # embedded a bounded number of times.
    assert dep.passings <= 6, dep.passings
    assert dep.decisions <= dep.passings + 2
    assert dep.faces_embedded <= 4 * dep.passings


def _walk(path: Any, frames: int) -> list[bytes]:
    """The portrait walking right across a street-sized frame, 40 px a frame."""
    face = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (150, 180))
    out = []
    for i in range(frames):
        canvas = np.full((480, 854, 3), 120, np.uint8)
        x = 40 + 40 * i
        canvas[120:300, x : x + 150] = face
        out.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
    return out


def test_a_retried_batch_is_not_decided_or_counted_twice(scenario_factory) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    cam = camera_context(rt, sc.deployment_id, sc.camera_id)
    start = datetime.now(UTC)
    walk = _walk(demo_person("Cory_Gardner", 2), 6)
    batch = [Frame(i, f"{i:06d}.jpg", start + timedelta(seconds=i / 5), walk[i])
             for i in range(3)]
    first = decide_and_alert(rt, cam, 0, batch, batch_id="b0")
    assert len(first.alerts) == 1 and not first.already_applied
    # The worker failed after the state landed (say, deleting the object): SQS retries.
    again = decide_and_alert(rt, cam, 0, batch, batch_id="b0")
    assert again.already_applied and again.alerts == [] and again.outcome.decisions == 0
    # The same person in the camera's next batch continues the passing: no new decision.
    nxt = [Frame(i - 3, f"{i:06d}.jpg", start + timedelta(seconds=i / 5), walk[i])
           for i in range(3, 6)]
    later = decide_and_alert(rt, cam, 1, nxt, batch_id="b1")
    assert later.outcome.continued == 1 and later.outcome.decisions == 0 and later.alerts == []
    dep = rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.batches, dep.frames, dep.passings, dep.decisions) == (2, 6, 1, 1)
    assert len(sc.alerts()) == 1


def test_the_sweep_deletes_expired_track_states(rt) -> None:
    from chalicelib.ingest.track_store import DynamoTrackStore
    from chalicelib.ops.retention import sweep

    store = DynamoTrackStore(rt.tables)
    now = datetime.now(UTC).timestamp()
    state = CameraTracks([CarriedTrack("t1", now, now, [0, 0, 40, 40], [0, 0, 40, 40], None,
                                       now)])
    store.save("dep-sweep#cam-1", state, 0, now - 2 * TRACK_TTL_S)  # written two minutes ago
    store.save("dep-sweep#cam-2", state, 0, now)
    assert store.load("dep-sweep#cam-1", now)[0].tracks == []  # expired: never used
    done = sweep(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                 datetime.now(UTC), timedelta(hours=1))
    assert done["track_states_deleted"] >= 1
    keys = {i.camera_key for i in rt.tables.CameraTracks.scan()}
    assert "dep-sweep#cam-1" not in keys and "dep-sweep#cam-2" in keys


def test_two_deliveries_of_one_batch_at_once_count_once(scenario_factory) -> None:
    from chalicelib.ingest.track_store import DynamoTrackStore

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    D = sc.rt.tables.Deployment
    store = DynamoTrackStore(sc.rt.tables)
    key, now = f"{sc.deployment_id}#cam-1", datetime.now(UTC).timestamp()
    track = CarriedTrack("t1", now, now, [0, 0, 40, 40], [0, 0, 40, 40], None, now)
    for other_tracks in ([track], []):  # both read version 0; the second write loses the race
        dep = D.get(sc.deployment_id)
        store.save(key, CameraTracks(other_tracks, now), 0, now, dep, [D.batches.add(1)],
                   batch_id="b1")
    assert D.get(sc.deployment_id).batches == 1
    state, version = store.load(key, now)
    assert version == 1 and [t.tid for t in state.tracks] == ["t1"]
    # A different batch that lost the same race is merged in and counted.
    dep = D.get(sc.deployment_id)
    store.save(key, CameraTracks([], now), 0, now, dep, [D.batches.add(1)], batch_id="b2")
    state, version = store.load(key, now)
    assert D.get(sc.deployment_id).batches == 2 and version == 2
    assert store.applied(key, "b1") and store.applied(key, "b2")
    assert [t.tid for t in state.tracks] == ["t1"]
    # A delivery of b1 that read the newest version still finds it applied: nothing lands.
    store.save(key, CameraTracks([], now), version, now, D.get(sc.deployment_id),
               [D.batches.add(1)], batch_id="b1")
    assert D.get(sc.deployment_id).batches == 2 and store.load(key, now)[1] == version


def test_a_quiet_camera_s_batch_redelivered_late_is_not_counted_twice(
        scenario_factory, monkeypatch) -> None:
    """Issue 22 item 11: the batch's state lands, the worker dies before it answers (deleting
    the object, say), the camera goes quiet, and SQS hands the batch over again only after the
    queue's visibility timeout, up to its last delivery. Its id must still be known then."""
    from chalicelib import queue_timing
    from chalicelib.ingest import decide

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    start = datetime.now(UTC)
    walk = _walk(demo_person("Cory_Gardner", 2), 3)
    batch = [Frame(i, f"{i:06d}.jpg", start + timedelta(seconds=i / 5), walk[i])
             for i in range(3)]
    first = decide_and_alert(rt, camera_context(rt, sc.deployment_id, sc.camera_id), 0, batch,
                             batch_id="b-late")
    assert len(first.alerts) == 1
    # The last delivery SQS makes, as late as it can come (every one after a full visibility).
    late = start.timestamp() + queue_timing.longest_redelivery_s(
        "frames", rt.settings.max_receive_count) + 1
    clock = type("Clock", (), {"time": staticmethod(lambda: late),
                               "perf_counter": staticmethod(time.perf_counter)})
    monkeypatch.setattr(decide, "time", clock)
    again = decide_and_alert(rt, camera_context(rt, sc.deployment_id, sc.camera_id), 0, batch,
                             batch_id="b-late")
    assert again.already_applied and again.outcome.decisions == 0
    dep = rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.batches, dep.frames, dep.decisions) == (1, 3, 1)
