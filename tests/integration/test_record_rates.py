"""The transparency record's false alert rates (issue 10, item 3), on moto server: per passer-by
and per face scanned, each with its exact 95% interval, beside what the target predicts, and
"unknown" while an alert awaits adjudication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import beta

from chalicelib.ops.records import transparency_record
from tests.integration.conftest import demo_person, jpeg

WANTED = ("Cory_Gardner", "Barbara_Lee")
STRANGERS = ("Doug_Collins", "Jackie_Speier", "Adrian_Smith")


def test_rates_are_unknown_until_adjudicated_then_exact(scenario_factory, local_stack,
                                                        api) -> None:
    sc = scenario_factory({n.replace("_", " "): [demo_person(n, 1)] for n in WANTED},
                          target_fpir=0.001)
    start = datetime.now(UTC)
    # Five people pass, a minute apart (one passing each): two of them on the watchlist.
    for i, name in enumerate((*WANTED, *STRANGERS)):
        sc.upload(i, [jpeg(demo_person(name, 2))], at=start + timedelta(minutes=i))
    local_stack["pump"].drain(timeout=180)
    alerts = sorted(sc.alerts(), key=lambda a: a.captured_at)
    assert [a.display_name for a in alerts] == ["Cory Gardner", "Barbara Lee"]
    dep = sc.rt.tables.Deployment.get(sc.deployment_id)
    people, faces = int(dep.passings), int(dep.faces_seen)
    assert people == 5 and faces >= 5

    auditor = api.token("auditor-1", ["auditor"])
    before = api.ok("GET", f"/deployments/{sc.deployment_id}/record", auditor)
    assert before["people_seen"] == people and before["unadjudicated"] == 2
    for key in ("measured_fpir", "measured_fpir_ci95", "false_alerts_per_face",
                "false_alerts_per_face_ci95"):
        assert before[key] == "unknown", key  # not 0.0: two alerts may yet be false
    assert before["rate_unknown_because"] == "2 alerts not yet adjudicated"
    assert before["expected_false_alerts"] == pytest.approx(0.001 * people)
    page = api.call("GET", f"/deployments/{sc.deployment_id}/record.html", auditor).body.decode()
    assert "unknown (2 alerts not yet adjudicated)" in page

    officer = api.token("officer-1", ["officer"], [sc.deployment_id])
    for alert, decision in zip(alerts, ("true_alert", "false_alert"), strict=True):
        api.ok("POST", f"/alerts/{alert.alert_id}/adjudication", officer, {"decision": decision})
    rec = api.ok("GET", f"/deployments/{sc.deployment_id}/record", auditor)
    assert (rec["false_alerts"], rec["unadjudicated"], rec["rate_unknown_because"]) == \
        (1, 0, None)
    assert rec["measured_fpir"] == pytest.approx(1 / people, rel=1e-5)
    # 1 false alert in 5 passers-by: the exact interval is (0.0051, 0.7164); its lower bound
    # solves (1 - p) ** 5 = 0.975, its upper is the beta quantile.
    lo, hi = rec["measured_fpir_ci95"]
    assert lo == pytest.approx(1 - 0.975 ** (1 / people), rel=1e-5)
    assert hi == pytest.approx(beta.ppf(0.975, 2, people - 1), rel=1e-5)
    assert (round(lo, 4), round(hi, 4)) == (0.0051, 0.7164)
    assert rec["false_alerts_per_face"] == pytest.approx(1 / faces, rel=1e-5)
    assert rec["false_alerts_per_face_ci95"] == pytest.approx(
        [beta.ppf(0.025, 1, faces), beta.ppf(0.975, 2, faces - 1)], rel=1e-5)
    assert rec["expected_false_alerts"] == pytest.approx(0.001 * people)
    assert "Clopper-Pearson" in rec["rate_interval"] and "95%" in rec["rate_interval"]
    page = api.call("GET", f"/deployments/{sc.deployment_id}/record.html", auditor).body.decode()
    assert f"0.2: 1 false in 5 passers-by; 95% interval {lo:.3g} to {hi:.3g}" in page
    assert "Clopper-Pearson" in page and "Expected false alerts" in page


def test_no_passers_by_is_no_rate(scenario_factory, rt) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, target_fpir=0.001)
    rec = transparency_record(rt.tables, sc.deployment_id)
    assert rec["people_seen"] == 0 and rec["alerts"] == 0
    assert rec["measured_fpir"] == "unknown" and rec["false_alerts_per_face"] == "unknown"
    assert rec["rate_unknown_because"] == "no passers-by seen"
    assert rec["expected_false_alerts"] == 0.0
