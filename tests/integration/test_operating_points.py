"""Deployment creation says what its threshold means (issue 10, operating points): against moto
server, through the REST API."""

from __future__ import annotations

from typing import Any

from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR, MET_RATE
from tests.integration.test_api_hostile import _authorised_watchlist, _deployment


def test_a_deployment_gets_the_default_target_and_its_operating_points(api, local_stack) -> None:
    op = api.token("operator-1", ["operator"])
    body: dict[str, Any] = _deployment(_authorised_watchlist(api))
    del body["target_fpir"]  # not stated: the default a force could defend
    out = api.ok("POST", "/deployments", op, body)
    assert out["target_fpir"] == DEFAULT_TARGET_FPIR == 1e-5
    pt = out["operating_point"]
    assert pt["threshold"] == out["threshold"]
    lo, hi = pt["expected_fpir_95"]
    # The threshold holds the one-sided 95 % bound at the target; the estimate lies below it.
    assert lo <= pt["expected_fpir"] <= DEFAULT_TARGET_FPIR <= hi * 1.5
    rates = pt["at_police_rates"]
    assert [r["target_fpir"] for r in rates] == [1e-3, 1e-4, 1e-5, MET_RATE]
    thresholds = [r["threshold"] for r in rates]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 4
    # Each says whether it was counted on the background faces or extrapolated.
    assert all(("extrapolated by the fitted tail" in r["says"]) == r["extrapolated"]
               for r in rates)
    # Issue 22 item 12: the held-out check (identities the model never saw) reaches 1e-3; a
    # figure below it is the impostor model's, counted on its own background at best, and says
    # so, the default target's included.
    assert not pt["checked_on_unseen"] and "never saw" in pt["says"]
    assert "extrapolated" in pt["says"]
    assert [r["checked_on_unseen"] for r in rates] == [True, False, False, False]
    for r in rates[1:]:
        assert "not checked on identities the model never saw" in r["says"], r["says"]
    assert "measured" in rates[0]["says"]
    looser = api.ok("POST", "/deployments", op,
                      {**_deployment(_authorised_watchlist(api)), "target_fpir": 1e-3})
    assert looser["threshold"] < out["threshold"]
