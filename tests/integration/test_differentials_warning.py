"""POST /deployments against moto with the force's differentials record (LFR_DIFFERENTIALS_PATH):
a threshold at or below one where the last evaluation found a significant FPIR differential is
warned about in the response and on the audit trail, and the deployment is still created."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.matching.differentials import KIND, VERSION
from tests.integration.test_api_hostile import _authorised_watchlist, _deployment


@pytest.fixture
def with_record(local_stack: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the app's settings at a differentials record written by the test."""
    rt = local_stack["rt"]

    def use(thresholds: list[dict[str, Any]] | None, model_id: str | None = None) -> None:
        path = tmp_path / "differentials.json"
        if thresholds is None:
            path.write_text("{not json")
        else:
            path.write_text(json.dumps({
                "kind": KIND, "version": VERSION, "model_id": model_id or rt.model_id,
                "evaluated_at": "2026-07-01T10:00:00+00:00", "alpha": 0.05,
                "groups": ["A", "B", "C"], "thresholds": thresholds}))
        monkeypatch.setattr(rt, "settings", dataclasses.replace(
            rt.settings, differentials_path=str(path)))

    return use


def _row(t: float, flagged: bool) -> dict[str, Any]:
    diff = [{"group": "B", "direction": "higher", "rate": 0.02, "p_holm": 0.001}]
    return {"threshold": t, "label": "given", "fpir_differential": diff if flagged else [],
            "fnir_differential": []}


def _create(api: Any) -> tuple[dict[str, Any], str]:
    op = api.token("operator-1", ["operator"])
    resp = api.call("POST", "/deployments", op, _deployment(_authorised_watchlist(api)))
    assert resp.status_code == 200, resp.body[:300]  # warned, never refused
    return resp.json_body, resp.json_body["deployment_id"]


def _trail(api: Any, did: str) -> list[dict[str, Any]]:
    auditor = api.token("auditor-1", ["auditor"])
    return api.ok("GET", f"/deployments/{did}/audit", auditor)


def test_a_threshold_below_a_differential_is_warned_and_audited(api, with_record) -> None:
    with_record([_row(0.20, False), _row(0.95, True)])  # a calibrated threshold is in between
    body, did = _create(api)
    assert 0.2 < body["threshold"] < 0.95
    kinds = [w["kind"] for w in body["warnings"]]
    assert kinds == ["fpir_differential"], body["warnings"]
    w = body["warnings"][0]
    assert w["groups"] == ["B (higher)"] and w["differential_thresholds"] == [0.95]
    assert f"{body['threshold']:.4f}" in w["message"]
    audited = [e for e in _trail(api, did) if e["action"] == "deployment.threshold_warning"]
    assert len(audited) == 1
    assert audited[0]["details"]["kind"] == "fpir_differential"
    assert audited[0]["details"]["groups"] == "B (higher)"
    assert audited[0]["actor"] == "operator-1"


def test_no_warning_above_every_differential(api, with_record) -> None:
    with_record([_row(0.05, True), _row(0.20, False), _row(0.99, False)])
    body, did = _create(api)
    assert body["warnings"] == []
    assert not [e for e in _trail(api, did) if e["action"] == "deployment.threshold_warning"]


def test_a_record_of_another_space_or_unreadable_is_said_so(api, with_record) -> None:
    with_record([_row(0.95, True)], model_id="some-other-recognizer")
    body, _ = _create(api)
    assert [w["kind"] for w in body["warnings"]] == ["differentials_other_space"]
    with_record(None)
    body, did = _create(api)
    assert [w["kind"] for w in body["warnings"]] == ["differentials_unreadable"]
    assert [e["details"]["kind"] for e in _trail(api, did)
            if e["action"] == "deployment.threshold_warning"] == ["differentials_unreadable"]


def test_lfr_deployment_create_warns_too(api, local_stack, tmp_path, monkeypatch, capsys) -> None:
    from chalicelib.cli import build_parser

    path = tmp_path / "differentials.json"
    path.write_text(json.dumps({
        "kind": KIND, "version": VERSION, "model_id": local_stack["rt"].model_id,
        "evaluated_at": "2026-07-01T10:00:00+00:00",
        "thresholds": [_row(0.20, False), _row(0.95, True)]}))
    monkeypatch.setenv("LFR_DIFFERENTIALS_PATH", str(path))
    wid = _authorised_watchlist(api)
    args = build_parser().parse_args(["deployment", "create", "--name", "cli", "--watchlist", wid,
                                      "--camera", "cam-1", "--by", "operator-1"])
    assert args.func(args) == 0
    out = capsys.readouterr()
    printed = json.loads(out.out.strip().splitlines()[-1])
    assert [w["kind"] for w in printed["warnings"]] == ["fpir_differential"]
    assert "warning: threshold" in out.err
    assert [e["details"]["kind"] for e in _trail(api, printed["deployment_id"])
            if e["action"] == "deployment.threshold_warning"] == ["fpir_differential"]
