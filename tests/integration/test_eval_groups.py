"""`lfr eval --groups` end to end on a slice of faces/dev with a MADE-UP grouping (a hash of
each name -> A/B/C): the real models (the session's embedding of the slice, `faces_dev_cache`),
the per-group counts add up to the evaluation's own, and the differentials record is written.
The labels mean nothing about anyone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from chalicelib.evaluation.groups import pseudo_groups
from chalicelib.evaluation.openset import list_identities, select_identities
from chalicelib.matching.differentials import load_record
from tests.conftest import shared_data
from tests.integration.test_eval_slice import run_on_cache


def test_eval_groups_on_a_slice(tmp_path: Path, capsys, faces_dev_cache: Path) -> None:
    data = shared_data("faces", "dev")
    names = sorted(select_identities(list_identities(data), limit=40))
    groups = pseudo_groups(names[:-5])  # the last five stay out of the file: "unlabelled"
    gfile = tmp_path / "groups.csv"
    with gfile.open("w", newline="") as f:
        csv.writer(f).writerows([("identity", "group"), *groups.items()])
    out, rec = tmp_path / "eval.json", tmp_path / "differentials.json"
    rc = run_on_cache(faces_dev_cache, [
        "eval", "--data", str(data), "--limit", "40", "--seed", "0", "--enroll", "1",
        "--json", str(out), "--det", str(tmp_path / "det.png"), "--quiet",
        "--groups", str(gfile), "--threshold", "0.2,0.3", "--differentials-out", str(rec)])
    assert rc == 0
    report = json.loads(out.read_text())
    g = report["groups"]
    assert g["groups"] == ["A", "B", "C", "unlabelled"]
    assert sum(g["people_per_group"].values()) == 40
    assert g["people_per_group"]["unlabelled"] == 5
    cal = report["calibrated"]
    rows = {r["label"].split(":")[0]: r for r in g["thresholds"]}
    assert rows["calibrated"]["threshold"] == cal["threshold"]
    assert [r["threshold"] for r in g["thresholds"]] == [cal["threshold"], 0.2, 0.3]
    for r in g["thresholds"]:
        fp, fn = r["fpir"]["groups"], r["fnir"]["groups"]
        assert sum(x["searches"] for x in fp.values()) == report["n_nonmated"]
        assert sum(x["searches"] for x in fn.values()) == report["n_mated"]
        for x in [*fp.values(), *fn.values()]:
            lo, hi = x["people_rate_ci95_clopper_pearson"]
            assert lo <= x["people_rate"] <= hi
            assert x["people_failed"] <= x["people"] and x["failures"] <= x["searches"]
    # At the calibrated threshold the groups' false alerts are the worker's own decisions'.
    at_cal = rows["calibrated"]
    assert sum(x["failures"] for x in at_cal["fpir"]["groups"].values()) == cal["false_alerts"]
    hits = sum(x["searches"] - x["failures"] for x in at_cal["fnir"]["groups"].values())
    assert hits / report["n_mated"] == cal["tpir"]
    # A lower threshold alerts at least as often and misses at most as often, group by group.
    at02, at03 = g["thresholds"][1], g["thresholds"][2]
    for k in g["groups"]:
        assert at02["fpir"]["groups"][k]["failures"] >= at03["fpir"]["groups"][k]["failures"]
        assert at02["fnir"]["groups"][k]["failures"] <= at03["fnir"]["groups"][k]["failures"]
    record = load_record(rec)
    assert record["model_id"] == report["model_id"]
    assert sorted(r["threshold"] for r in record["thresholds"]) == sorted(
        [cal["threshold"], 0.2, 0.3])
    assert not any(n in rec.read_text() for n in names)  # groups and counts, nobody's name
    printed = capsys.readouterr().out
    assert "FPIR worst/best" in printed and "unlabelled" in printed
