"""Alerts queue -> SNS mobile push to the officers' devices on the deployment, and its topic.

Each phone gets each alert once, through retries, duplicate deliveries and crashes. The alert
row keeps one delivery record per target (each registered device, and the topic):

- a target is claimed (conditional write: no record yet, or a claim whose lease has lapsed)
  before its publish, and recorded as sent after it;
- a publish that fails releases its claim, the other targets are still pushed, and the message
  is retried: the retry pushes only the targets without a record (F-2);
- a notifier that dies mid-publish (SIGKILL, timeout) leaves its claim, which lapses after
  `push_lease_s`; the retry, after the queue's visibility timeout, sends it (F-1).

The one duplicate left: a notifier that dies after SNS accepted a publish and before the record
was written. Its target is pushed again by the retry. That window is one DynamoDB write long,
and the fault-injection suite counts it (docs/faults.md). The row is marked notified when every
target has a record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.store.tables import AlertBase, Tables, utcnow

TOPIC = "topic"  # the delivery record of the deployment topic's publish


class PushesIncomplete(RuntimeError):
    """Some targets have no push yet: the message is retried, for them only."""


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


class _Deliveries:
    """The alert row's delivery records: claim, record, release (conditional writes)."""

    def __init__(self, tables: Tables, alert: AlertBase, lease_s: float,
                 clock: Callable[[], float]) -> None:
        self.A, self.alert, self.lease_s, self.clock = tables.Alert, alert, lease_s, clock
        if alert.deliveries is None:  # a row written before delivery records existed
            alert.update(actions=[self.A.deliveries.set(self.A.deliveries | {})])

    def record(self, target: str) -> dict[str, Any] | None:
        held = self.alert.deliveries
        found = (held.as_dict() if held is not None else {}).get(target)
        return dict(found) if found is not None else None

    def claim(self, target: str) -> tuple[str, float]:
        """("mine", t) when this notifier may publish; ("done", 0) when the target has its
        push; ("busy", lapses at) while another notifier's claim holds."""
        now = self.clock()
        path = self.A.deliveries[target]
        try:
            self.alert.update(
                actions=[path.set({"state": "sending", "at": now})],
                condition=path.does_not_exist() | (
                    (path["state"] == "sending") & (path["at"] < now - self.lease_s)),
            )
            return "mine", now
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
        self.alert.refresh(consistent_read=True)
        found = self.record(target) or {}
        if found.get("state") == "sending":
            return "busy", float(found["at"]) + self.lease_s
        return "done", 0.0

    def done(self, target: str, state: str, message_id: str = "") -> None:
        self.alert.update(actions=[self.A.deliveries[target].set(
            {"state": state, "at": self.clock(), "message_id": message_id})])

    def release(self, target: str, claimed_at: float) -> None:
        path = self.A.deliveries[target]
        try:
            self.alert.update(actions=[path.remove()],
                              condition=(path["state"] == "sending") & (path["at"] == claimed_at))
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise


def notify_alert(
    tables: Tables, sns: Any, topic_arn: str, alert_id: str,
    link_for: Callable[[str], str] = lambda alert_id: f"/alerts/{alert_id}",
    lease_s: float = 25.0, wait_budget_s: float = 0.0,
    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
) -> NotifyResult:
    """Pushes the alert to every target without a push. `wait_budget_s`: how long this
    notifier may wait for another's claim to lapse before leaving the target to a retry."""
    try:
        alert = tables.Alert.get(alert_id, consistent_read=True)
    except tables.Alert.DoesNotExist:
        return NotifyResult(alert_id, 0, "unknown alert")
    if alert.notified_at is not None:
        return NotifyResult(alert_id, 0, "already notified")
    deliveries = _Deliveries(tables, alert, lease_s, clock)
    payload = json.dumps(push_payload(alert, utcnow().isoformat(), link_for(alert_id)))
    topic_message = json.dumps({"alert_id": alert.alert_id, "deployment_id": alert.deployment_id})

    def to_device(arn: str) -> Callable[[], str]:
        return lambda: sns.publish(TargetArn=arn, Message=payload,
                                   MessageStructure="json")["MessageId"]

    def to_topic() -> str:
        return sns.publish(TopicArn=topic_arn, Message=topic_message, MessageAttributes={
            "deployment_id": {"DataType": "String", "StringValue": alert.deployment_id}},
        )["MessageId"]

    targets = [(d.device_id, to_device(d.endpoint_arn))
               for d in tables.Device.query(alert.deployment_id)] + [(TOPIC, to_topic)]
    deadline = clock() + wait_budget_s
    pushed, left, errors = 0, [], []
    for target, send in targets:
        state, at = deliveries.claim(target)
        while state == "busy" and at <= deadline:
            sleep(max(0.0, at - clock()) + 0.05)
            state, at = deliveries.claim(target)
        if state == "done":
            continue
        if state == "busy":
            left.append(target)
            continue
        try:
            message_id = send()
        except sns.exceptions.EndpointDisabledException:
            deliveries.done(target, "disabled")  # token stale; other officers still get it
            continue
        except Exception as exc:  # throttled, SNS down: the others are still pushed
            deliveries.release(target, at)
            left.append(target)
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        deliveries.done(target, "sent", message_id)
        pushed += target != TOPIC
    if left:
        raise PushesIncomplete(f"alert {alert_id}: {len(left)} of {len(targets)} targets "
                               f"without a push yet ({'; '.join(sorted(set(errors))) or 'busy'})")
    alert.update(actions=[tables.Alert.notified_at.set(utcnow())])
    return NotifyResult(alert_id, pushed)
