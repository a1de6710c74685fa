"""The watchlist summary says what each subject's enrollment will probably catch at the
threshold the list will run at, and flags those who will probably be missed (issue 23,
lever 4). Against moto server, through Chalice's test client."""

from __future__ import annotations

from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR, STATS_DIR
from chalicelib.matching.expected_tpir import LIKELY_MISSED_BELOW, load_mated_model
from chalicelib.ops.deployments import calibrated_threshold
from tests.integration.test_api_batch_enroll import _draft, _person, _subject


def test_the_summary_gives_each_subject_an_expected_tpir_at_the_list_s_threshold(
        api, local_stack) -> None:
    op, wid = _draft(api)
    body = {"subjects": [
        _subject("Cory Gardner", [_person("Cory_Gardner", 1), _person("Cory_Gardner", 2)]),
        _subject("Amy Klobuchar", [_person("Amy_Klobuchar", 1)]),
    ]}
    enrolled = api.ok("POST", f"/watchlists/{wid}/subjects/batch", op, body)
    assert enrolled["enrolled"] == 2
    summary = api.ok("GET", f"/watchlists/{wid}", op)
    out = summary["outlook"]
    # Not yet bound: the default target at this list's size and reference counts.
    assert out["target_fpir"] == DEFAULT_TARGET_FPIR
    assert out["threshold"] == round(calibrated_threshold(
        summary["model_id"], DEFAULT_TARGET_FPIR, {1: 1, 2: 1}), 6)
    model = load_mated_model(STATS_DIR, summary["model_id"])
    assert model is not None, "the shipped embedding space has no expected-TPIR model"
    by_name = {s["display_name"]: s for s in summary["subjects"]}
    two, one = by_name["Cory Gardner"], by_name["Amy Klobuchar"]
    assert two["reference_agreement"] is not None and one["reference_agreement"] is None
    for s in (two, one):
        assert s["expected_tpir"] == model.expected_tpir(
            s["n_images"], s["reference_agreement"], out["threshold"])
        assert s["likely_missed"] == (s["expected_tpir"] < LIKELY_MISSED_BELOW)
    assert two["expected_tpir"] > one["expected_tpir"]
    assert out["likely_missed"] == two["likely_missed"] + one["likely_missed"]
    # Enrollment said the same, at the list's threshold as it stood after the request.
    assert enrolled["outlook"]["threshold"] == out["threshold"]
    at_enrollment = {r["subject_id"]: r["expected_tpir"] for r in enrolled["results"]}
    assert at_enrollment == {s["subject_id"]: s["expected_tpir"] for s in (two, one)}
    # One more subject alone: its own figure comes back at once, at the list's new threshold.
    third = api.ok("POST", f"/watchlists/{wid}/subjects", op,
                   _subject("Ann Kuster", [_person("Ann_Kuster", 1)]))
    assert third["n_images"] == 1 and third["reference_agreement"] is None
    assert third["outlook"]["threshold"] == round(calibrated_threshold(
        summary["model_id"], DEFAULT_TARGET_FPIR, {1: 2, 2: 1}), 6)
    assert third["expected_tpir"] == model.expected_tpir(1, None, third["outlook"]["threshold"])
