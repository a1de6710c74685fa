"""From one camera's frames to alerts: the steps the stream worker and the batch job share, so
their decisions cannot drift apart (deployment checks, the authorised window, track fusion,
the calibrated threshold, one alert per passing across batches, counters)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.alerts.raise_alert import AlertContext, alert_id_for, raise_alert
from chalicelib.alerts.sightings import camera_key, claim_sighting, extend_sighting
from chalicelib.ingest.batch_format import BatchFormatError, Frame
from chalicelib.ingest.continuity import CameraTracks
from chalicelib.ingest.process import BatchOutcome, FusionPolicy, process_frames
from chalicelib.ingest.track_store import DynamoTrackStore, TrackStore, tracks_from
from chalicelib.matching.index import ExactIndex
from chalicelib.ops.deployments import in_window
from chalicelib.ops.lookalikes import resembles, ruled_out
from chalicelib.ops.watchlist_index import Held
from chalicelib.runtime import Runtime

metrics = Metrics(namespace="LiveFacialRecognition", service="lfr-worker")
logger = Logger(service="lfr-worker")


@dataclass
class CameraContext:
    """Everything needed to decide on frames of one camera of one running deployment."""

    deployment: Any
    camera_id: str
    index: ExactIndex
    subject_names: dict[str, str]
    threshold: float
    # The camera's track state and its version, when read together with the deployment, and
    # whether the batch asked about (its id) had been applied.
    tracks: tuple[CameraTracks, int] | None = None
    applied: tuple[str, bool] | None = None


@dataclass
class Decided:
    outcome: BatchOutcome
    alerts: list[str] = field(default_factory=list)
    continued: int = 0  # matches that continue an alert already raised for the same passing
    lookalikes: list[str] = field(default_factory=list)  # of `alerts`: flagged, not pushed
    already_applied: bool = False  # a retry of a batch whose state and counts had landed


def camera_context(rt: Runtime, deployment_id: str, camera_id: str,
                   batch_id: str = "") -> CameraContext:
    """Raises BatchFormatError (the batch is retried, then dead-lettered) when the deployment
    is unknown, not running, or does not own the camera. `batch_id`: the batch about to be
    decided, whose applied mark is read in the same request."""
    tables = rt.tables
    reads = rt.batch_reader.read(tables, rt.client("dynamodb"), deployment_id,
                                 camera_key(deployment_id, camera_id), batch_id)
    deployment = reads.deployment
    if deployment is None:
        raise BatchFormatError(f"unknown deployment {deployment_id}")
    if deployment.status != "active" or not deployment.watchlist_id:
        raise BatchFormatError(f"deployment {deployment.deployment_id} is not active")
    if deployment.cameras and camera_id not in deployment.cameras:
        raise BatchFormatError(f"camera {camera_id} is not on this deployment")
    held = rt.index_cache.get(tables, rt.client("s3"), rt.settings.evidence_bucket,
                              deployment.watchlist_id, reads.watchlist_version, _index_loaded)
    index, subject_names = held.index, held.names
    if len(index) and index.model_id != rt.pipeline.model_id:
        raise RuntimeError(f"watchlist model {index.model_id} != pipeline {rt.pipeline.model_id}")
    threshold = float(
        deployment.threshold if deployment.threshold is not None else rt.settings.match_threshold
    )
    tracks = tracks_from(reads.tracks_item, time.time()) if reads.tracks_read else None
    applied = (batch_id, reads.applied) if reads.tracks_read and batch_id else None
    return CameraContext(deployment, camera_id, index, subject_names, threshold, tracks,
                         applied)


def _index_loaded(held: Held) -> None:
    """A container (re)loaded a watchlist: counted by source; a refused snapshot is a warning
    (its reason only: a tampered or stale snapshot is never used, the table is read instead)."""
    metrics.add_metric("WatchlistLoads" + held.source.title(), MetricUnit.Count, 1)
    if held.refused and held.refused != "none":
        metrics.add_metric("WatchlistSnapshotsRefused", MetricUnit.Count, 1)
        logger.warning("watchlist snapshot refused, read the table instead",
                       reason=held.refused, version=held.version, subjects=len(held.index))


def fusion_policy(s: Any) -> FusionPolicy:
    return FusionPolicy(enabled=s.track_fusion, best_k=s.track_best_k,
                        max_embedded=s.track_max_embedded, key_interval_s=s.key_interval_s)


def decide_and_alert(rt: Runtime, cam: CameraContext, sequence: int, frames: Iterable[Frame],
                     batch_id: str = "", store: TrackStore | None = None) -> Decided:
    """`batch_id` names this batch's content (object key and ETag): a batch applied once is
    not applied again. `store` holds the camera's tracks between batches (DynamoDB)."""
    s, dep = rt.settings, cam.deployment
    continuity = s.track_continuity and s.track_fusion
    key = camera_key(dep.deployment_id, cam.camera_id)
    now = time.time()
    carried: CameraTracks | None = None
    version = 0
    given, store = store, store or DynamoTrackStore(rt.tables)
    if continuity and given is None and cam.tracks is not None:
        carried, version = cam.tracks  # read with the deployment, in the same request
    elif continuity:
        carried, version = store.load(key, now)
    if batch_id and _applied(cam, store, given, key, batch_id):
        return Decided(BatchOutcome(), already_applied=True)
    outcome = process_frames(_in_window(frames, dep), rt.pipeline, cam.index, cam.threshold,
                             s.max_frame_pixels, fusion_policy(s), carried, now)
    ctx = AlertContext(
        deployment_id=dep.deployment_id, camera_id=cam.camera_id, sequence=sequence,
        batch_id=batch_id, watchlist_id=dep.watchlist_id, model_id=rt.pipeline.model_id,
        threshold=cam.threshold,
        target_fpir=dep.target_fpir, crop_retention_days=s.crop_retention_days,
    )
    done = Decided(outcome)
    ruled = ruled_out(dep.lookalikes)  # false alerts of this deployment, read with it
    for m in outcome.matches:
        alert_id = alert_id_for(ctx.deployment_id, ctx.camera_id, sequence, m.subject_id,
                                batch_id)
        if not claim_sighting(rt.tables, ctx.deployment_id, ctx.camera_id, m.subject_id,
                              alert_id, m.captured_at, s.realert_after_s):
            done.continued += 1
            continue
        like = resembles(ruled, m.subject_id, m.score, now, s.lookalike_margin)
        raise_alert(rt.tables, rt.client("s3"), rt.client("sqs"), s.evidence_bucket,
                    rt.queue_url(s.alerts_queue), ctx, m,
                    cam.subject_names.get(m.subject_id, m.subject_id), lookalike_of=like)
        done.alerts.append(alert_id)
        done.lookalikes += [alert_id] if like else []
    for subject_id, seen in outcome.sustained:
        # A matched passing still in view: its sighting stays fresh, so no second alert.
        extend_sighting(rt.tables, ctx.deployment_id, ctx.camera_id, subject_id, seen,
                        s.realert_after_s)
    counters = _counters(rt.tables, outcome, cam.camera_id)
    if continuity:
        store.save(key, outcome.carry, version, now, dep, counters, batch_id)
    elif batch_id:
        store.record_applied(key, batch_id, now, dep, counters)
    else:
        dep.update(actions=counters)
    _metrics(outcome)
    metrics.add_metric("Alerts", MetricUnit.Count, len(done.alerts))
    metrics.add_metric("LookalikeAlerts", MetricUnit.Count, len(done.lookalikes))
    return done


def _applied(cam: CameraContext, store: TrackStore, given: TrackStore | None, key: str,
             batch_id: str) -> bool:
    if given is None and cam.applied is not None and cam.applied[0] == batch_id:
        return cam.applied[1]  # read with the deployment, in the same request
    return store.applied(key, batch_id)


def _in_window(frames: Iterable[Frame], deployment: Any) -> Iterator[Frame]:
    """Frames captured outside the deployment's authorised window are not looked at."""
    for f in frames:
        yield f if in_window(deployment, f.captured_at) else replace(
            f, data=None, problem="outside_window")


def _counters(tables: Any, outcome: BatchOutcome, camera_id: str) -> list[Any]:
    """Counts only: how much was looked at, never what was in it. Per camera, the frames that
    reached the worker (looked at or skipped), the denominator of its lost frames."""
    D = tables.Deployment
    arrived = outcome.frames_processed + sum(outcome.frames_skipped.values())
    return [
        D.camera_frames[camera_id].set((D.camera_frames[camera_id] | 0) + arrived),
        D.batches.add(1),
        D.frames.add(outcome.frames_processed),
        D.faces_seen.add(outcome.faces_seen),
        D.tracks.add(outcome.tracks),
        D.passings.add(outcome.passings),
        D.faces_embedded.add(outcome.faces_embedded),
        D.decisions.add(outcome.decisions),
        D.frames_skipped.add(sum(outcome.frames_skipped.values())),
        D.faces_rejected.add(sum(outcome.faces_rejected.values())),
    ]


def _metrics(outcome: BatchOutcome) -> None:
    metrics.add_metric("FramesProcessed", MetricUnit.Count, outcome.frames_processed)
    metrics.add_metric("FramesSkipped", MetricUnit.Count, sum(outcome.frames_skipped.values()))
    metrics.add_metric("FacesSeen", MetricUnit.Count, outcome.faces_seen)
    metrics.add_metric("FacesRejected", MetricUnit.Count, sum(outcome.faces_rejected.values()))
    metrics.add_metric("FacesEmbedded", MetricUnit.Count, outcome.faces_embedded)
    metrics.add_metric("Passings", MetricUnit.Count, outcome.passings)
    metrics.add_metric("Matches", MetricUnit.Count, len(outcome.matches))
