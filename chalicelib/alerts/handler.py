"""Lambda entry for the alerts queue: one push per alert and phone, partial batch failure on
errors (a retried message pushes only the targets still without a push), and on the last try
the message is dead-lettered with its reason."""

from __future__ import annotations

import json
import math
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
from chalicelib.deadletter import park_if_past_last_try, park_last_delivery, retry_soon
from chalicelib.queue_timing import RETRY_AFTER_S
from chalicelib.runtime import Runtime

logger = Logger(service="lfr-notifier")
_MARGIN_MS = 5000  # left to the invocation after waiting for another notifier's claim


class AlertsHandler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._secret = rt.link_secret  # at start-up: a stage without one does not start

    def link(self, alert_id: str) -> str:
        s = self.rt.settings
        return alert_link(s.console_url, self._secret, alert_id, s.alert_link_ttl_s)

    def _record(self, record: SQSRecord, lambda_context: Any = None) -> dict[str, Any]:
        if park_if_past_last_try(self.rt, record, "alerts_notifier", logger):
            return {"dead_lettered": record.message_id}  # its last try died: saying so
        try:
            return self._handle(record, lambda_context)
        except Exception as exc:
            logger.error("alert not fully pushed; retried", message_id=record.message_id,
                         reason=str(exc))
            # On the last try dead-lettered with its reason (chalicelib/deadletter.py).
            if park_last_delivery(self.rt, record, exc, logger):
                return {"dead_lettered": record.message_id}
            # Not before a push claim of a notifier that died has lapsed (alerts/notify.py).
            retry_soon(self.rt, record, logger,
                       max(RETRY_AFTER_S, math.ceil(self.rt.settings.push_lease_s) + 5))
            raise

    def _handle(self, record: SQSRecord, lambda_context: Any) -> dict[str, Any]:
        alert_id = json.loads(record.body)["alert_id"]
        s = self.rt.settings
        left_ms = lambda_context.get_remaining_time_in_millis() if lambda_context else 0
        result = notify_alert(
            self.rt.tables, self.rt.client("sns"), self.rt.topic_arn, alert_id,
            self.link,
            lease_s=s.push_lease_s,
            wait_budget_s=min(s.push_lease_s, max(0, left_ms - _MARGIN_MS) / 1000),
        )
        logger.info("alert notified", alert_id=alert_id, pushed=result.pushed,
                    skipped=result.skipped)
        return {"alert_id": alert_id, "pushed": result.pushed}

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS)
        return process_partial_response(
            event=event, record_handler=self._record, processor=processor, context=context
        )
