"""Alert identity against moto server: a new passing always alerts, whatever the gateway's
sequence numbers and whatever order the batches are processed in (issue 11, F-3 and F-4)."""

from __future__ import annotations

import json
import uuid
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


def test_two_batches_of_one_passing_claiming_at_once_raise_one_alert(rt, monkeypatch) -> None:
    """Two workers decide two batches of one camera at once, the same person in both: each
    reads the subject's passings before either writes. The second write is refused by the
    item's version; its writer reads again, finds the first's passing and continues it
    (alerts/sightings.py, docs/delivery.md)."""
    from chalicelib.alerts import sightings

    dep, cam, subject = f"dep-race-{uuid.uuid4().hex[:8]}", "cam-1", "s-1"
    t0 = datetime.now(UTC)
    real_place, raced = sightings.place, []

    def the_other_writes_meanwhile(passings, alert_id, t, window_s):  # type: ignore[no-untyped-def]
        if alert_id == "al-b" and not raced:  # B has read; A claims and writes before B does
            raced.append(sightings.claim_sighting(rt.tables, dep, cam, subject, "al-a", t0, 60))
        return real_place(passings, alert_id, t, window_s)

    monkeypatch.setattr(sightings, "place", the_other_writes_meanwhile)
    b = sightings.claim_sighting(rt.tables, dep, cam, subject, "al-b",
                                 t0 + timedelta(seconds=2), 60)
    assert raced == [True] and b is False  # A raises the alert; B continues it
    item = rt.tables.Sighting.get(f"{dep}#{cam}", subject, consistent_read=True)
    assert [p["alert_id"] for p in json.loads(item.passings)] == ["al-a"]
