"""Alert identity against moto server: a new passing always alerts, whatever the gateway's
sequence numbers and whatever order the batches are processed in (issue 11, F-3 and F-4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.conftest import demo_person, jpeg


def test_a_restarted_gateway_reusing_a_sequence_still_alerts_a_new_passing(
        scenario_factory, local_stack) -> None:
    # F-3: gateways restart and count from 0 again. The same wanted person passes 10 minutes
    # later in a batch with a sequence already used: that is a new passing, a new alert.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    now = datetime.now(UTC)
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=now)
    local_stack["pump"].drain(timeout=120)
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=now + timedelta(minutes=10))
    local_stack["pump"].drain(timeout=120)

    alerts = sc.alerts()
    assert len(alerts) == 2, [a.captured_at for a in alerts]
    assert len({a.alert_id for a in alerts}) == 2
    assert len(sc.pushes()) == 4  # both alerts on both phones


def test_an_earlier_passing_processed_after_a_later_one_still_alerts(scenario_factory,
                                                                     local_stack) -> None:
    # F-4: a batch retried or redriven from the DLQ arrives after a later passing of the same
    # person was processed. It is a passing of its own (minutes apart) and must alert.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=1)
    start = datetime.now(UTC)  # the deployment's authorised window opens now
    sc.upload(8, [jpeg(demo_person("Cory_Gardner", 2))], at=start + timedelta(minutes=6))
    local_stack["pump"].drain(timeout=120)
    sc.upload(3, [jpeg(demo_person("Cory_Gardner", 2))], at=start + timedelta(minutes=1))
    local_stack["pump"].drain(timeout=120)
    # And a batch of the earlier passing, seconds after it: the same passing, no third alert.
    sc.upload(4, [jpeg(demo_person("Cory_Gardner", 2))],
              at=start + timedelta(minutes=1, seconds=5))
    local_stack["pump"].drain(timeout=120)

    alerts = sorted(sc.alerts(), key=lambda a: a.captured_at)
    assert len(alerts) == 2, [a.captured_at for a in alerts]
    assert alerts[1].captured_at - alerts[0].captured_at > timedelta(minutes=4)
    assert len(sc.pushes()) == 2
