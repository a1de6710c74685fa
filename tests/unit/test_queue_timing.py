"""Queue timing derived from one place (issue 22, item 3): each queue's visibility timeout is
six times its consumer's Lambda timeout as Chalice will deploy it (AWS's rule for SQS event
sources, so that throttled receives do not use up a message's tries), and SQS redrives a
message only after one delivery more than the handler tries, so that a try that died is
dead-lettered by the handler with a reason."""

from __future__ import annotations

import json

import pytest

from chalicelib.settings import Settings
from infra import spec
from infra.policies import CONFIG

CONSUMER = {"frames": "frames_worker", "alerts": "alerts_notifier"}


def _deployed_timeout(config: dict, stage: str, function: str) -> int:
    """What `chalice deploy` gives the function: its stage entry, then the stage, then the
    top level (Chalice's own order of precedence)."""
    st = config["stages"][stage]
    entry = st.get("lambda_functions", {}).get(function, {})
    return int(entry.get("lambda_timeout", st.get("lambda_timeout", config["lambda_timeout"])))


@pytest.mark.parametrize("stage", spec.STAGES)
def test_visibility_is_six_times_the_consumers_deployed_timeout(stage: str) -> None:
    config = json.loads(CONFIG.read_text())
    queues = {q.name.rsplit("-", 1)[1]: q for q in spec.build(spec.stage_settings(stage)).queues}
    assert set(queues) == set(CONSUMER)
    for short, q in queues.items():
        timeout = _deployed_timeout(config, stage, CONSUMER[short])
        assert q.visibility_s >= 6 * timeout, (q.name, q.visibility_s, timeout)


@pytest.mark.parametrize("stage", spec.STAGES)
def test_sqs_redrives_only_after_one_delivery_more_than_the_handler_tries(stage: str) -> None:
    for q in spec.build(spec.stage_settings(stage)).queues:
        assert q.max_receive_count == Settings.max_receive_count + 1, q.name


def test_applied_batch_ids_outlast_every_way_a_batch_comes_back() -> None:
    """Issue 22 item 11: a batch's id is remembered longer than its last redelivery and than
    its frames can exist (the lifecycle rule counts days to the next midnight UTC), so a late
    delivery or a redrive of a batch already applied is never decided or counted again."""
    from chalicelib import queue_timing
    from chalicelib.ingest.continuity import APPLIED_TTL_S

    assert queue_timing.longest_redelivery_s("frames", Settings.max_receive_count) < APPLIED_TTL_S
    assert APPLIED_TTL_S >= (spec.FRAMES_EXPIRY_DAYS + 1) * 24 * 3600
