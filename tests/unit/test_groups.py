"""Demographic differentials on synthetic per-probe results whose answer is known: one group's
people alert far more often, and the report must flag that group, give intervals that are right,
and the deployment warning must follow from the record it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from chalicelib.evaluation.groups import (
    UNLABELLED,
    clopper_pearson,
    cluster_bootstrap,
    differentials_report,
    format_report,
    holm,
    load_groups,
    parse_groups,
)
from chalicelib.evaluation.openset import ProbeScores
from chalicelib.matching.differentials import (
    load_record,
    parse_record,
    record_from_report,
    threshold_warnings,
)

HIGH, LOW, T = 0.9, 0.1, 0.5


def synthetic(extra_unlabelled: int = 0) -> tuple[ProbeScores, dict[str, str]]:
    """100 non-mated people per group A, B, C with 3 searches each. In B, 20 people alert on
    all three of their searches (a look-alike alerts on every photo: correlated); in A and C,
    2 people alert on one search. Mated: 50 people per group, 2 searches each; C's people miss
    one search in 10 of them, A and B's in 1."""
    nm_id, nm_score, m_id, m_score, m_ok = [], [], [], [], []
    groups: dict[str, str] = {}
    for g, alerting, per in (("A", 2, 1), ("B", 20, 3), ("C", 2, 1)):
        for i in range(100):
            name = f"{g}_non_{i}"
            groups[name] = g
            for j in range(3):
                nm_id.append(name)
                nm_score.append(HIGH if i < alerting and j < per else LOW)
        missing = 10 if g == "C" else 1
        for i in range(50):
            name = f"{g}_mated_{i}"
            groups[name] = g
            for j in range(2):
                m_id.append(name)
                m_score.append(LOW if (i < missing and j == 0) else HIGH)
                m_ok.append(True)
    for i in range(extra_unlabelled):  # not in the file: "unlabelled"
        nm_id.append(f"nobody_{i}")
        nm_score.append(LOW)
    scores = ProbeScores(
        mated_score=np.array(m_score), mated_correct=np.array(m_ok),
        nonmated_score=np.array(nm_score), mated_identity=np.array(m_id),
        nonmated_identity=np.array(nm_id))
    return scores, groups


def test_clopper_pearson_matches_known_values() -> None:
    # 0 of 10: the upper bound has the closed form 1 - (alpha/2)^(1/n) = 0.30850.
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** 0.1, abs=1e-9)
    assert hi == pytest.approx(0.30850, abs=1e-5)
    # 3 of 100: the tabulated exact interval [0.0062, 0.0852].
    lo, hi = clopper_pearson(3, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.0062, 0.0852)
    # The defining property: each bound leaves 2.5% of the binomial on its side.
    lo, hi = clopper_pearson(20, 100)
    assert stats.binom.sf(19, 100, lo) == pytest.approx(0.025, abs=1e-9)
    assert stats.binom.cdf(20, 100, hi) == pytest.approx(0.025, abs=1e-9)


def test_holm_step_down() -> None:
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_the_group_with_more_false_positives_is_flagged() -> None:
    scores, groups = synthetic()
    report = differentials_report(scores, groups, [("calibrated", T)])
    row = report["thresholds"][0]
    fpir = row["fpir"]
    b = fpir["groups"]["B"]
    assert (b["people"], b["searches"], b["failures"]) == (100, 300, 60)
    assert b["rate"] == pytest.approx(0.2)
    assert (b["people_failed"], b["people"]) == (20, 100)
    assert b["people_rate_ci95_clopper_pearson"] == pytest.approx(
        list(clopper_pearson(20, 100)), abs=1e-6)
    assert b["people_rate_ci95_clopper_pearson"][0] == pytest.approx(0.1267, abs=1e-4)
    assert b["people_rate_ci95_clopper_pearson"][1] == pytest.approx(0.2918, abs=1e-4)
    assert b["significant"] and b["direction"] == "higher" and b["p_holm"] < 1e-4
    assert "B" in fpir["differential"]
    assert all(fpir["groups"][g]["direction"] != "higher" for g in ("A", "C"))
    assert fpir["worst"] == "B"
    assert fpir["ratio_worst_to_best"] == pytest.approx(0.2 / (2 / 300))
    # Holm over three groups: B's adjusted p is at least its raw p, at most 3x it.
    assert b["p_vs_rest"] <= b["p_holm"] <= 3 * b["p_vs_rest"]
    # FNIR: C's people miss more (10 of 50 vs 2 of 100).
    fnir = row["fnir"]
    assert fnir["groups"]["C"]["rate"] == pytest.approx(10 / 100)
    assert fnir["groups"]["C"]["people_failed"] == 10
    assert fnir["groups"]["C"]["significant"] and fnir["groups"]["C"]["direction"] == "higher"
    assert fnir["worst"] == "C"


def test_intervals_account_for_the_correlation_of_one_persons_searches() -> None:
    scores, groups = synthetic()
    b = differentials_report(scores, groups, [("t", T)])["thresholds"][0]["fpir"]["groups"]["B"]
    lo, hi = b["rate_ci95_cluster_bootstrap"]
    assert lo < 0.2 < hi
    # A's alerts come all-or-nothing per person: resampling people must give a wider interval
    # than treating the 300 searches as independent trials would.
    naive_lo, naive_hi = clopper_pearson(60, 300)
    assert hi - lo > 1.2 * (naive_hi - naive_lo)
    # ... about as wide as the per-person proportion's (20 of 100) scaled to the same rate.
    assert 0.10 < lo < 0.14 and 0.26 < hi < 0.30


def test_no_false_positive_and_a_single_person_give_no_bootstrap_interval() -> None:
    assert cluster_bootstrap(np.zeros(5), np.full(5, 3), seed=0) is None
    assert cluster_bootstrap(np.ones(1), np.ones(1), seed=0) is None


def test_no_differential_when_groups_are_alike() -> None:
    scores, groups = synthetic()
    same = {k: ("A" if v == "B" else v) for k, v in groups.items()}  # B's people into A
    r = differentials_report(scores, same, [("t", 0.95)])  # above every score: none alert
    assert r["thresholds"][0]["fpir"]["differential"] == []
    assert r["thresholds"][0]["fpir"]["ratio_worst_to_best"] is None  # 0/0
    assert "FPIR worst/best A/A: none in any group" in format_report(r)
    # Without B's people, A and C alert alike.
    keep = np.array([groups[i] != "B" for i in scores.nonmated_identity])
    no_b = ProbeScores(scores.mated_score, scores.mated_correct, scores.nonmated_score[keep],
                       mated_identity=scores.mated_identity,
                       nonmated_identity=scores.nonmated_identity[keep])
    fpir = differentials_report(no_b, groups, [("t", T)])["thresholds"][0]["fpir"]
    assert set(fpir["groups"]) == {"A", "C"}
    assert fpir["differential"] == [] and fpir["ratio_worst_to_best"] == pytest.approx(1.0)


def test_unlabelled_people_are_tested_but_not_ranked() -> None:
    scores, groups = synthetic()
    alike = {k: v for k, v in groups.items() if v != "B"}  # B's people not in the file
    fpir = differentials_report(scores, alike, [("t", T)])["thresholds"][0]["fpir"]
    assert fpir["groups"][UNLABELLED]["significant"]  # the look-alikes are still found
    assert fpir["ratio_worst_to_best"] == pytest.approx(1.0)  # but only A and C are ranked


def test_identities_missing_from_the_file_are_unlabelled() -> None:
    scores, groups = synthetic(extra_unlabelled=7)
    r = differentials_report(scores, groups, [("t", T)])
    assert r["groups"][-1] == UNLABELLED
    assert r["people_per_group"][UNLABELLED] == 7
    assert r["thresholds"][0]["fpir"]["groups"][UNLABELLED]["searches"] == 7
    text = format_report(r)
    assert "unlabelled" in text and "<- higher" in text and "FPIR worst/best B/" in text


def test_no_mated_probe_at_all() -> None:
    s = ProbeScores(np.array([]), np.array([], bool), np.array([0.9, 0.1]),
                    mated_identity=np.array([], str), nonmated_identity=np.array(["a", "b"]))
    r = differentials_report(s, {"a": "X", "b": "Y"}, [("t", T)])["thresholds"][0]
    assert r["fnir"] == {"groups": {}, "worst": None, "best": None,
                         "ratio_worst_to_best": None, "differential": []}
    assert r["fpir"]["groups"]["X"]["failures"] == 1
    assert "FNIR: no searches" in format_report(
        differentials_report(s, {"a": "X", "b": "Y"}, [("t", T)]))


def test_scores_without_identities_are_refused() -> None:
    s = ProbeScores(np.array([0.9]), np.array([True]), np.array([0.1]))
    with pytest.raises(ValueError, match="identity"):
        differentials_report(s, {}, [("t", T)])


def test_groups_files(tmp_path: Path) -> None:
    csv = tmp_path / "g.csv"
    csv.write_text("identity,group\n# a comment\nAlice_A, one\nBob_B,two\n\n")
    assert load_groups(csv) == {"Alice_A": "one", "Bob_B": "two"}
    js = tmp_path / "g.json"
    js.write_text(json.dumps({"Alice_A": "one"}))
    assert load_groups(js) == {"Alice_A": "one"}
    assert parse_groups("Alice_A,one\n", "csv") == {"Alice_A": "one"}  # no header
    with pytest.raises(ValueError, match="two group labels"):
        parse_groups("a,x\na,y\n", "csv")
    with pytest.raises(ValueError):
        parse_groups('["a", "b"]', "json")
    with pytest.raises(ValueError, match="identity,group"):
        parse_groups("a\n", "csv")


def _record(model: str = "space-1") -> dict:
    scores, groups = synthetic()
    report = differentials_report(scores, groups, [("calibrated", T), ("given", 0.95)])
    return record_from_report(report, model, evaluation={"seed": 0})


def test_the_record_names_the_differential_and_nobody() -> None:
    rec = parse_record(json.loads(json.dumps(_record())))
    assert [r["threshold"] for r in rec["thresholds"]] == [T, 0.95]
    at_t = rec["thresholds"][0]
    assert [d["group"] for d in at_t["fpir_differential"] if d["direction"] == "higher"] == ["B"]
    assert rec["thresholds"][1]["fpir_differential"] == []
    assert "_non_" not in json.dumps(rec) and "_mated_" not in json.dumps(rec)  # no identities


def test_deployment_warnings_follow_the_record(tmp_path: Path) -> None:
    rec = _record()
    below = threshold_warnings(rec, "space-1", 0.45)
    assert [w["kind"] for w in below] == ["fpir_differential", "below_evaluated_thresholds"]
    assert "B (higher)" in below[0]["groups"] and below[0]["differential_thresholds"] == [T]
    at = threshold_warnings(rec, "space-1", T)
    assert [w["kind"] for w in at] == ["fpir_differential"]  # at the threshold: warned
    assert threshold_warnings(rec, "space-1", 0.6) == []  # above it: no differential found
    other = threshold_warnings(rec, "space-2", 0.45)
    assert [w["kind"] for w in other] == ["differentials_other_space"]
    assert threshold_warnings(None, "space-1", 0.1) == []
    path = tmp_path / "d.json"
    path.write_text(json.dumps(rec))
    assert load_record(path)["model_id"] == "space-1"
    with pytest.raises(ValueError):
        parse_record({"kind": "something else"})
