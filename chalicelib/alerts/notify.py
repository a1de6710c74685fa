"""Alerts queue -> SNS mobile push to the officers' devices on the deployment, and its topic.

Exactly one push per alert: the alert row is claimed (conditional update of notified_at) before
sending; if sending fails the claim is released and the message retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.store.tables import AlertBase, Tables, utcnow


@dataclass(frozen=True)
class NotifyResult:
    alert_id: str
    pushed: int
    skipped: str | None = None


def push_payload(alert: AlertBase, pushed_at: str, link: str) -> dict[str, Any]:
    """What an officer's phone receives. The name is that of a watchlist subject (a match)."""
    data = {
        "alert_id": alert.alert_id,
        "deployment_id": alert.deployment_id,
        "camera_id": alert.camera_id,
        "subject_id": alert.subject_id,
        "subject": alert.display_name,
        "score": float(alert.score),
        "threshold": float(alert.threshold),
        "captured_at": alert.captured_at.isoformat(),
        "pushed_at": pushed_at,
        "link": link,
    }
    title = f"Possible match: {alert.display_name}"
    body = f"Camera {alert.camera_id}, score {float(alert.score):.2f}. Review before any action."
    return {
        "default": f"{title}. {body}",
        "GCM": json.dumps({"notification": {"title": title, "body": body}, "data": data}),
        "APNS": json.dumps({"aps": {"alert": {"title": title, "body": body}}, "lfr": data}),
    }


def notify_alert(
    tables: Tables, sns: Any, topic_arn: str, alert_id: str,
    link_for: Callable[[str], str] = lambda alert_id: f"/alerts/{alert_id}",
) -> NotifyResult:
    try:
        alert = tables.Alert.get(alert_id)
    except tables.Alert.DoesNotExist:
        return NotifyResult(alert_id, 0, "unknown alert")
    now = utcnow()
    try:
        alert.update(
            actions=[tables.Alert.notified_at.set(now)],
            condition=tables.Alert.notified_at.does_not_exist(),
        )
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return NotifyResult(alert_id, 0, "already notified")
        raise
    payload = json.dumps(push_payload(alert, now.isoformat(), link_for(alert_id)))
    pushed = 0
    try:
        for device in tables.Device.query(alert.deployment_id):
            try:
                sns.publish(
                    TargetArn=device.endpoint_arn, Message=payload, MessageStructure="json"
                )
                pushed += 1
            except sns.exceptions.EndpointDisabledException:
                continue  # phone unregistered or token stale; other officers still get it
        sns.publish(
            TopicArn=topic_arn,
            Message=json.dumps({"alert_id": alert.alert_id, "deployment_id": alert.deployment_id}),
            MessageAttributes={
                "deployment_id": {"DataType": "String", "StringValue": alert.deployment_id}
            },
        )
    except Exception:
        alert.update(actions=[tables.Alert.notified_at.remove()])
        raise
    return NotifyResult(alert_id, pushed)
