"""Pushes against moto server: every phone gets each alert once, through failures and crashes
of the notifier (issue 11, F-1 and F-2)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import demo_person, jpeg


class Crash(BaseException):
    """A crash that no `except Exception` catches: the process dies here, as Lambda would on a
    timeout or an out-of-memory kill."""


class Publishes:
    """Records each publish that SNS accepted (to a phone or to the topic)."""

    def __init__(self, sns: Any) -> None:
        self.sns, self.sent = sns, []

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["lfr_params"] = dict(params)

    def _after(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if http_response.status_code == 200:
            self.sent.append(context["lfr_params"])

    def __enter__(self) -> Publishes:
        self.sns.meta.events.register("before-parameter-build.sns.Publish", self._params)
        self.sns.meta.events.register("after-call.sns.Publish", self._after)
        return self

    def __exit__(self, *_: Any) -> None:
        self.sns.meta.events.unregister("before-parameter-build.sns.Publish", self._params)
        self.sns.meta.events.unregister("after-call.sns.Publish", self._after)


def _alert_message(rt: Any, deployment_id: str) -> str:
    """Takes the alert's message off the alerts queue, as the notifier's poller would."""
    sqs = rt.client("sqs")
    url = rt.queue_url(rt.settings.alerts_queue)
    for _ in range(30):
        for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            alert_id = json.loads(m["Body"])["alert_id"]
            if rt.tables.Alert.get(alert_id).deployment_id == deployment_id:
                return m["Body"]
    raise AssertionError("no alert message arrived")


def _process_frames_only(local_stack: dict[str, Any]) -> None:
    pump = local_stack["pump"]
    frames = [m for m in pump.mappings if m.function_name == "frames_worker"]
    for _ in range(20):
        if not pump._poll(frames[0], wait_s=1):
            break


def test_a_throttled_publish_is_retried_for_that_phone_only(scenario_factory,
                                                           local_stack) -> None:
    # F-2: one phone's publish is throttled. The retry must push that phone, not every phone
    # again, and the topic once.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    sns = rt.client("sns")
    tried: list[str] = []
    throttled: list[str] = []

    def throttle_once(params: dict[str, Any], **_: Any) -> None:
        # The second phone tried is throttled, once: the first has had its push by then.
        if params.get("TargetArn") in sc.devices:
            tried.append(params["TargetArn"])
            if len(tried) == 2:
                throttled.append(params["TargetArn"])
                raise ClientError({"Error": {"Code": "Throttling", "Message": "injected"}},
                                  "Publish")

    sns.meta.events.register_first("before-parameter-build.sns.Publish", throttle_once)
    try:
        with Publishes(sns) as publishes:
            sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=datetime.now(UTC))
            local_stack["pump"].drain(timeout=120)
    finally:
        sns.meta.events.unregister("before-parameter-build.sns.Publish", throttle_once)
    assert throttled, "the throttle was not injected"
    assert sorted(p.endpoint_arn for p in sc.pushes()) == sorted(sc.devices)  # once each
    assert sorted(p.officer for p in sc.pushes()) == ["officer-0", "officer-1"]
    topic = [p for p in publishes.sent if "TopicArn" in p and sc.deployment_id in p["Message"]]
    assert len(topic) == 1
    (alert,) = sc.alerts()
    assert alert.notified_at is not None


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_notifier_crash_mid_publish_loses_no_push(scenario_factory, local_stack, monkeypatch,
                                                    when: str) -> None:
    # F-1: the notifier dies during the publish to the first phone, before the request left
    # ("before") or after SNS took it ("after"). Its redelivery must push every phone that has
    # not had it; only "after" may push that phone twice (the window between a publish and its
    # record), and nothing else is pushed twice.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    monkeypatch.setattr(rt, "settings", replace(rt.settings, push_lease_s=1.0))
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=datetime.now(UTC))
    _process_frames_only(local_stack)
    body = _alert_message(rt, sc.deployment_id)

    from chalicelib.alerts.handler import AlertsHandler
    from chalicelib.local.pump import LambdaContext, sqs_event

    sns = rt.client("sns")
    event_name = ("before-parameter-build" if when == "before" else "after-call") + ".sns.Publish"

    def crash(**_: Any) -> None:
        raise Crash()

    sns.meta.events.register_first(event_name, crash)
    event = sqs_event([{"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": body,
                        "Attributes": {"ApproximateReceiveCount": "1"}}],
                      "arn:aws:sqs:eu-west-2:123456789012:alerts", rt.settings.region)
    try:
        with pytest.raises(Crash):
            AlertsHandler(rt)(event, LambdaContext("alerts_notifier"))
    finally:
        sns.meta.events.unregister(event_name, crash)
    crashed = len(sc.pushes())
    assert crashed == (1 if when == "after" else 0)

    # SQS delivers the message again once its visibility timeout passes.
    out = AlertsHandler(rt)(event, LambdaContext("alerts_notifier"))
    assert out["batchItemFailures"] == []
    pushes = sorted(p.endpoint_arn for p in sc.pushes())
    assert set(pushes) == set(sc.devices)
    assert len(pushes) == (3 if when == "after" else 2)
    # Delivered a third time (a duplicate from SQS): nothing more.
    AlertsHandler(rt)(event, LambdaContext("alerts_notifier"))
    assert len(sc.pushes()) == len(pushes)


def test_a_second_notifier_of_one_alert_pushes_no_phone_the_first_has_claimed(
        scenario_factory, local_stack) -> None:
    # Two alerts messages for one alert at once (raise_alert sends it again when a worker died
    # after the row, or SQS delivers it twice): while the first notifier publishes to a phone,
    # a second starts. That phone's claim holds (its lease has not lapsed): the second leaves
    # it to a retry and pushes only what nobody has claimed. Every phone is pushed once.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=datetime.now(UTC))
    _process_frames_only(local_stack)
    alert_id = json.loads(_alert_message(rt, sc.deployment_id))["alert_id"]

    from chalicelib.alerts.notify import PushesIncomplete, notify_alert

    sns, second = rt.client("sns"), []

    def second_notifier(params: dict[str, Any], **_: Any) -> None:
        if params.get("TargetArn") in sc.devices and not second:
            second.append("started")
            try:
                second[0] = notify_alert(rt.tables, sns, rt.topic_arn, alert_id).pushed
            except PushesIncomplete:
                second[0] = "left a claimed phone to a retry"

    sns.meta.events.register_first("before-parameter-build.sns.Publish", second_notifier)
    try:
        with Publishes(sns) as publishes:
            first = notify_alert(rt.tables, sns, rt.topic_arn, alert_id)
    finally:
        sns.meta.events.unregister("before-parameter-build.sns.Publish", second_notifier)
    assert second == ["left a claimed phone to a retry"]
    assert first.pushed == 1  # the phone it had claimed; the second pushed the other
    assert sorted(p.endpoint_arn for p in sc.pushes()) == sorted(sc.devices)  # once each
    assert len([p for p in publishes.sent if "TopicArn" in p]) == 1
    assert rt.tables.Alert.get(alert_id).notified_at is not None
