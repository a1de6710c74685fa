"""Lambda entry for the alerts queue: one push per alert, partial batch failure on errors."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.alerts.links import alert_link
from chalicelib.alerts.notify import notify_alert
from chalicelib.deadletter import park_last_delivery
from chalicelib.runtime import Runtime

logger = Logger(service="lfr-notifier")


class AlertsHandler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _record(self, record: SQSRecord) -> dict[str, Any]:
        try:
            return self._handle(record)
        except Exception as exc:
            # Retried; on the last try dead-lettered with its reason (chalicelib/deadletter.py).
            if park_last_delivery(self.rt, record, exc, logger):
                return {"dead_lettered": record.message_id}
            raise

    def _handle(self, record: SQSRecord) -> dict[str, Any]:
        alert_id = json.loads(record.body)["alert_id"]
        s = self.rt.settings
        result = notify_alert(
            self.rt.tables, self.rt.client("sns"), self.rt.topic_arn, alert_id,
            lambda a: alert_link(s.console_url, s.link_secret, a, s.alert_link_ttl_s),
        )
        logger.info("alert notified", alert_id=alert_id, pushed=result.pushed,
                    skipped=result.skipped)
        return {"alert_id": alert_id, "pushed": result.pushed}

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS)
        return process_partial_response(
            event=event, record_handler=self._record, processor=processor, context=context
        )
