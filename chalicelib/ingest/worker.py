"""Frames queue -> one frame batch processed. The AWS edge around ingest/process.py.

Each SQS record carries an S3 ObjectCreated notification. Records are processed one by one with
powertools' BatchProcessor (a failing record is reported in batchItemFailures, retried alone,
and on its last try sent to the dead-letter queue with its reason, chalicelib/deadletter.py);
each upload is processed at most once per S3 event (bucket, key, ETag, event time and
sequencer) by powertools idempotency, and a batch whose content was applied already (the same
bytes uploaded again) is not decided or counted again (its id is kept, store/tables.AppliedBatch,
for longer than the batch can exist), only deleted.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
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

from chalicelib.deadletter import park_if_past_last_try, park_last_delivery, retry_soon
from chalicelib.ingest.batch_format import BatchFormatError, BatchLimits, open_batch
from chalicelib.ingest.decide import camera_context, decide_and_alert, metrics
from chalicelib.runtime import Runtime
from chalicelib.store import layout
from chalicelib.store.s3_events import NotificationError, s3_objects
from chalicelib.store.tables import idempotency_table_name

logger = Logger(service="lfr-worker")


def limits_of(rt: Runtime) -> BatchLimits:
    s = rt.settings
    return BatchLimits(s.max_frames_per_batch, s.max_frame_bytes, s.max_batch_bytes)


def batch_id_of(key: str, etag: str) -> str:
    """Names a batch's content: the same bytes under the same key are the same batch (a
    gateway that restarts and reuses a sequence sends other bytes)."""
    return hashlib.sha256(f"{key}|{etag}".encode()).hexdigest()[:16]


def process_object(rt: Runtime, bucket: str, key: str) -> dict[str, Any]:
    """Process one batch object; returns counts and alert ids (nothing biometric)."""
    where = layout.parse_batch_key(key)
    if where is None:
        raise BatchFormatError(f"object key {key!r} is not under frames/<deployment>/<camera>/")
    s3 = rt.client("s3")
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
        data = got["Body"].read()
    except s3.exceptions.NoSuchKey:
        # Already processed and deleted (a late duplicate notification): nothing left to do.
        return {"key": key, "status": "gone"}
    manifest, frames = open_batch(data, limits_of(rt))
    if (manifest.deployment_id, manifest.camera_id) != (where.deployment_id, where.camera_id):
        raise BatchFormatError(
            f"manifest speaks for {manifest.deployment_id}/{manifest.camera_id} "
            f"but the object is under {where.deployment_id}/{where.camera_id}"
        )
    batch_id = batch_id_of(key, got.get("ETag", ""))
    cam = camera_context(rt, manifest.deployment_id, manifest.camera_id, batch_id)
    done = decide_and_alert(rt, cam, manifest.sequence, frames, batch_id)
    # Nothing of the frames outlives their processing, matched or not.
    s3.delete_object(Bucket=bucket, Key=key)
    summary = {"key": key, "status": "already applied" if done.already_applied else "processed",
               "alerts": done.alerts,
               "alerts_continued": done.continued, **done.outcome.counts()}
    summary["timings_ms"] = {k: round(v, 1) for k, v in done.outcome.timings_ms.items()}
    return summary


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
        if park_if_past_last_try(self.rt, record, "frames_worker", logger):
            return []  # its last try died: dead-lettered, saying so
        try:
            return self._handle(record)
        except Exception as exc:
            # Retried; on the last try dead-lettered with its reason (chalicelib/deadletter.py).
            if park_last_delivery(self.rt, record, exc, logger):
                return []
            retry_soon(self.rt, record, logger)
            raise

    def _handle(self, record: SQSRecord) -> list[dict[str, Any]]:
        results = []
        try:
            objects = s3_objects(record.body)
        except NotificationError as exc:
            logger.error("notification rejected", message_id=record.message_id, reason=str(exc))
            metrics.add_metric("NotificationsRejected", MetricUnit.Count, 1)
            raise
        for obj in objects:
            try:
                result = self._once(obj=obj)
            except BatchFormatError as exc:
                logger.error("batch rejected", key=obj["key"], reason=str(exc))
                metrics.add_metric("BatchesRejected", MetricUnit.Count, 1)
                if int(record.attributes.approximate_receive_count) >= \
                        self.rt.settings.max_receive_count:
                    # Last try: the message goes to the DLQ with the reason; the frames,
                    # faces of passers-by, do not wait a day for the lifecycle rule.
                    self.rt.client("s3").delete_object(Bucket=obj["bucket"], Key=obj["key"])
                    logger.error("rejected batch deleted unprocessed", key=obj["key"])
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
