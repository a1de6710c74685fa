"""The worker's metrics (issue 10, item 3): "Alerts" counts alerts raised, one per passing,
not "Matches" (a passing seen again within the quiet window matches again but continues its
alert). On moto server, through the decide step the worker and the batch job share."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from chalicelib.ingest import decide
from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.decide import camera_context, decide_and_alert
from tests.integration.conftest import demo_person, jpeg


def _recording(monkeypatch) -> list[Counter[str]]:  # type: ignore[no-untyped-def]
    batches: list[Counter[str]] = []

    def add_metric(name: str, unit: object, value: float) -> None:
        batches[-1][name] += value

    monkeypatch.setattr(decide.metrics, "add_metric", add_metric)
    return batches


def test_alerts_metric_counts_alerts_not_matches(scenario_factory, monkeypatch) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt, seen = sc.rt, _recording(monkeypatch)
    face = jpeg(demo_person("Cory_Gardner", 2))
    start = datetime.now(UTC)
    # He passes, is out of view for 20 s (his track ends) and is seen again: within the quiet
    # window of the same camera, so the same passing. Then, 10 minutes later, he passes again.
    for seq, after in enumerate((timedelta(0), timedelta(seconds=20), timedelta(minutes=10))):
        seen.append(Counter())
        cam = camera_context(rt, sc.deployment_id, sc.camera_id)
        decide_and_alert(rt, cam, seq, [Frame(0, "0.jpg", start + after, face)],
                         batch_id=f"b{seq}")
    assert [(b["Matches"], b["Alerts"]) for b in seen] == [(1, 1), (1, 0), (1, 1)]
    assert len(sc.alerts()) == sum(b["Alerts"] for b in seen) == 2
