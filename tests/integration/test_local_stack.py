"""The local stack's own promises to the tests: the pump drains on the queues' state, not on a
clock; pushes are read per phone; a reset leaves an empty stack with every resource."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib import names
from chalicelib.local.inspect import _moto_dump, _moto_endpoints, delivered_pushes
from chalicelib.local.pump import EventPump, Mapping
from chalicelib.ops.deployments import PLATFORMS
from tests.conftest import skip_on_localstack


def test_drain_waits_for_a_message_in_flight_to_come_back(rt: Any, local_stack: Any) -> None:
    """A message another consumer holds (visibility 2 s) is neither visible nor gone: drain
    must wait for it and hand it over, however many empty polls come first."""
    sqs = rt.client("sqs")
    name = f"{rt.settings.prefix}-drain-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="held")
    held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=2)["Messages"]
    assert [m["Body"] for m in held] == ["held"]
    got: list[str] = []

    def handler(event: dict[str, Any], _context: Any) -> None:
        got.extend(r["body"] for r in event["Records"])

    pump = EventPump(rt.settings, [Mapping(name, handler, "test")])
    pump.drain(timeout=30)
    assert got == ["held"]
    assert pump.backlog() == 0


def test_drain_keeps_its_deadline_while_a_message_keeps_failing(rt: Any, local_stack: Any) -> None:
    """A queue with no dead-letter queue and a handler that always fails: the message comes back
    at once (LFR_PUMP_RETRY_S=0), forever; drain must still give up at its deadline."""
    sqs = rt.client("sqs")
    name = f"{rt.settings.prefix}-poison-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")

    def handler(_event: dict[str, Any], _context: Any) -> None:
        raise RuntimeError("always")

    pump = EventPump(rt.settings, [Mapping(name, handler, "test")])
    with pytest.raises(TimeoutError):
        pump.drain(timeout=1)
    sqs.delete_queue(QueueUrl=url)


def test_pushes_are_read_per_phone_as_moto_holds_them(rt: Any, local_stack: Any) -> None:
    skip_on_localstack("the route is our moto server's (chalicelib/local/moto_app.py)")
    sns, s = rt.client("sns"), rt.settings
    arns = []
    for platform in PLATFORMS:
        arn = sns.create_platform_endpoint(
            PlatformApplicationArn=names.platform_app_arn(s, platform),
            Token=f"token-{uuid.uuid4().hex}", CustomUserData=f"officer-{platform}")["EndpointArn"]
        data = {"alert_id": f"al-{platform}"}
        sns.publish(TargetArn=arn, MessageStructure="json", Message=json.dumps(
            {"default": "d", "GCM": json.dumps({"data": data})}))
        arns.append(arn)
    one = delivered_pushes(local_stack["endpoint"], arns[:1])
    assert [(p.endpoint_arn, p.officer, p.data) for p in one] == [
        (arns[0], f"officer-{PLATFORMS[0]}", {"alert_id": f"al-{PLATFORMS[0]}"})]
    assert delivered_pushes(local_stack["endpoint"], []) == []
    # Read through the route (a plain moto server would answer None: the dump is the fallback).
    assert [ep["arn"] for ep in _moto_endpoints(local_stack["endpoint"], arns[:1]) or []] == \
        arns[:1]
    everyone = delivered_pushes(local_stack["endpoint"])
    # The same pushes as moto's whole-server dump holds, which the route replaces.
    dumped = {ep["arn"]: ep["messages"] for ep in _moto_dump(local_stack["endpoint"])}
    assert {(p.endpoint_arn, p.message_id) for p in everyone} == {
        (arn, mid) for arn, messages in dumped.items() for mid in messages}
    assert set(arns) <= {p.endpoint_arn for p in everyone}


def _own_server(local_stack: Any) -> Any:
    session = local_stack["session"]
    skip_on_localstack("a reset empties only a moto server of the run's own")
    if not session.resettable:
        pytest.skip("LFR_TEST_ENDPOINT: a shared moto server is never reset")
    return session


def test_this_module_starts_on_a_stack_no_other_module_left_state_in(
        rt: Any, local_stack: Any) -> None:
    """Earlier modules on this worker created deployments; none is left for this one. (No
    test of this module creates one.)"""
    _own_server(local_stack)
    assert rt.tables.Deployment.count() == 0


def test_a_reset_leaves_every_resource_and_nothing_else(rt: Any, local_stack: Any) -> None:
    session = _own_server(local_stack)
    s3, s = rt.client("s3"), rt.settings
    s3.put_object(Bucket=s.frames_bucket, Key="frames/left/over.lfrb", Body=b"x")
    session.reset()
    assert s3.list_objects_v2(Bucket=s.frames_bucket).get("KeyCount") == 0
    # Every resource is there again, under the same names and addresses.
    sqs = rt.client("sqs")
    assert sqs.get_queue_url(QueueName=s.frames_queue)["QueueUrl"] == rt.queue_url(s.frames_queue)
    assert sqs.get_queue_attributes(
        QueueUrl=rt.queue_url(s.alerts_queue), AttributeNames=["RedrivePolicy"])["Attributes"]
    assert all(model.exists() for model in rt.tables.all())
