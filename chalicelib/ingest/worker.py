"""Frames queue -> one frame batch processed. The AWS edge around ingest/process.py.

Each SQS record carries an S3 ObjectCreated notification. Records are processed one by one with
powertools' BatchProcessor (a failing record is reported in batchItemFailures, retried alone,
and after maxReceiveCount lands in the dead-letter queue); each S3 object is processed at most
once per (bucket, key, etag) by powertools idempotency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from chalicelib.alerts.raise_alert import AlertContext, alert_id_for, raise_alert
from chalicelib.alerts.sightings import claim_sighting
from chalicelib.ingest.batch_format import BatchFormatError, BatchLimits, Frame, open_batch
from chalicelib.ingest.process import BatchOutcome, FusionPolicy, process_frames
from chalicelib.ops.deployments import in_window
from chalicelib.runtime import Runtime
from chalicelib.store import layout
from chalicelib.store.tables import idempotency_table_name

logger = Logger(service="lfr-worker")
metrics = Metrics(namespace="LiveFacialRecognition", service="lfr-worker")


def s3_objects(body: str) -> list[dict[str, str]]:
    """The (bucket, key, etag) of each ObjectCreated record in an S3 notification body."""
    message = json.loads(body)
    if message.get("Event") == "s3:TestEvent":
        return []
    out = []
    for rec in message.get("Records", []):
        if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = rec["s3"]
        out.append(
            {
                "bucket": s3["bucket"]["name"],
                "key": unquote_plus(s3["object"]["key"]),  # keys arrive URL-encoded
                "etag": s3["object"].get("eTag", ""),
            }
        )
    return out


def limits_of(rt: Runtime) -> BatchLimits:
    s = rt.settings
    return BatchLimits(s.max_frames_per_batch, s.max_frame_bytes, s.max_batch_bytes)


def process_object(rt: Runtime, bucket: str, key: str) -> dict[str, Any]:
    """Process one batch object; returns counts and alert ids (nothing biometric)."""
    where = layout.parse_batch_key(key)
    if where is None:
        raise BatchFormatError(f"object key {key!r} is not under frames/<deployment>/<camera>/")
    s3 = rt.client("s3")
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        # Already processed and deleted (a late duplicate notification): nothing left to do.
        return {"key": key, "status": "gone"}
    manifest, frames = open_batch(data, limits_of(rt))
    if (manifest.deployment_id, manifest.camera_id) != (where.deployment_id, where.camera_id):
        raise BatchFormatError(
            f"manifest speaks for {manifest.deployment_id}/{manifest.camera_id} "
            f"but the object is under {where.deployment_id}/{where.camera_id}"
        )
    tables = rt.tables
    try:
        deployment = tables.Deployment.get(manifest.deployment_id)
    except tables.Deployment.DoesNotExist:
        raise BatchFormatError(f"unknown deployment {manifest.deployment_id}") from None
    if deployment.status != "active" or not deployment.watchlist_id:
        raise BatchFormatError(f"deployment {deployment.deployment_id} is not active")
    if deployment.cameras and manifest.camera_id not in deployment.cameras:
        raise BatchFormatError(f"camera {manifest.camera_id} is not on this deployment")

    index, subject_names = rt.index_cache.get(tables, deployment.watchlist_id)
    pipeline = rt.pipeline
    if len(index) and index.model_id != pipeline.model_id:
        raise RuntimeError(f"watchlist model {index.model_id} != pipeline {pipeline.model_id}")
    threshold = float(
        deployment.threshold if deployment.threshold is not None else rt.settings.match_threshold
    )
    s = rt.settings
    fusion = FusionPolicy(enabled=s.track_fusion, best_k=s.track_best_k)
    outcome = process_frames(_in_window(frames, deployment), pipeline, index, threshold,
                             s.max_frame_pixels, fusion)
    ctx = AlertContext(
        deployment_id=deployment.deployment_id,
        camera_id=manifest.camera_id,
        sequence=manifest.sequence,
        watchlist_id=deployment.watchlist_id,
        model_id=pipeline.model_id,
        threshold=threshold,
        target_fpir=deployment.target_fpir,
        crop_retention_days=s.crop_retention_days,
    )
    alert_ids, continued = [], 0
    for m in outcome.matches:
        alert_id = alert_id_for(ctx.deployment_id, ctx.camera_id, ctx.sequence, m.subject_id)
        if not claim_sighting(tables, ctx.deployment_id, ctx.camera_id, m.subject_id, alert_id,
                              m.captured_at, s.realert_after_s):
            continued += 1  # the same passing as an alert already raised
            continue
        raise_alert(tables, s3, rt.client("sqs"), s.evidence_bucket,
                    rt.queue_url(s.alerts_queue), ctx, m,
                    subject_names.get(m.subject_id, m.subject_id))
        alert_ids.append(alert_id)
    _count(tables, deployment, outcome)
    # Nothing of the frames outlives their processing, matched or not.
    s3.delete_object(Bucket=bucket, Key=key)
    summary = {"key": key, "status": "processed", "alerts": alert_ids,
               "alerts_continued": continued, **outcome.counts()}
    summary["timings_ms"] = {k: round(v, 1) for k, v in outcome.timings_ms.items()}
    return summary


def _in_window(frames: Iterator[Frame], deployment: Any) -> Iterator[Frame]:
    """Frames captured outside the deployment's authorised window are not looked at."""
    for f in frames:
        yield f if in_window(deployment, f.captured_at) else replace(
            f, data=None, problem="outside_window")


def _count(tables: Any, deployment: Any, outcome: BatchOutcome) -> None:
    deployment.update(
        actions=[
            tables.Deployment.batches.add(1),
            tables.Deployment.frames.add(outcome.frames_processed),
            tables.Deployment.faces_seen.add(outcome.faces_seen),
            tables.Deployment.tracks.add(outcome.tracks),
            tables.Deployment.frames_skipped.add(sum(outcome.frames_skipped.values())),
            tables.Deployment.faces_rejected.add(sum(outcome.faces_rejected.values())),
        ]
    )
    metrics.add_metric("FramesProcessed", MetricUnit.Count, outcome.frames_processed)
    metrics.add_metric("FramesSkipped", MetricUnit.Count, sum(outcome.frames_skipped.values()))
    metrics.add_metric("FacesSeen", MetricUnit.Count, outcome.faces_seen)
    metrics.add_metric("FacesRejected", MetricUnit.Count, sum(outcome.faces_rejected.values()))
    metrics.add_metric("Alerts", MetricUnit.Count, len(outcome.matches))


class FramesHandler:
    """Lambda entry for the frames queue (app.py hands it the raw event)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        persistence = DynamoDBPersistenceLayer(
            table_name=idempotency_table_name(rt.settings), boto3_client=rt.client("dynamodb")
        )
        config = IdempotencyConfig(expires_after_seconds=24 * 3600)
        self._once = idempotent_function(
            data_keyword_argument="obj", persistence_store=persistence, config=config
        )(self._process)
        self._config = config

    def _process(self, obj: dict[str, str]) -> dict[str, Any]:
        return process_object(self.rt, obj["bucket"], obj["key"])

    def _record(self, record: SQSRecord) -> list[dict[str, Any]]:
        results = []
        for obj in s3_objects(record.body):
            try:
                result = self._once(obj=obj)
            except BatchFormatError as exc:
                logger.error("batch rejected", key=obj["key"], reason=str(exc))
                metrics.add_metric("BatchesRejected", MetricUnit.Count, 1)
                raise
            logger.info("batch processed", **{k: v for k, v in result.items() if k != "alerts"},
                        alerts=len(result.get("alerts", [])))
            results.append(result)
        return results

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if context is not None:
            self._config.register_lambda_context(context)
        processor = BatchProcessor(event_type=EventType.SQS)
        metrics.add_metric("NotificationsReceived", MetricUnit.Count, len(event.get("Records", [])))
        try:
            return process_partial_response(
                event=event, record_handler=self._record, processor=processor, context=context
            )
        finally:
            metrics.flush_metrics()
