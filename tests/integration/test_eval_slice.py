"""`lfr eval` end to end on a small slice of faces/dev (the real models, 44 identities), its
photos embedded once per session (`faces_dev_cache`) and read through `--cache`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.conftest import shared_data


def run_lfr(argv: list[str]) -> int:
    from chalicelib.evaluation.cli import add_commands

    parser = argparse.ArgumentParser(prog="lfr")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def run_on_cache(cache: Path, argv: list[str]) -> int:
    """`lfr eval ... --cache` with the session's embedding of the slice (`faces_dev_cache`):
    every photo is in it, so the run embeds nothing again and leaves the file as it was."""
    before = cache.stat().st_mtime_ns
    rc = run_lfr([*argv, "--cache", str(cache)])
    assert cache.stat().st_mtime_ns == before, "the slice was embedded again"
    return rc


def test_eval_on_a_slice(tmp_path: Path, faces_dev_cache: Path) -> None:
    data = shared_data("faces", "dev")
    out, det = tmp_path / "eval.json", tmp_path / "det.png"
    rc = run_on_cache(faces_dev_cache, [
        "eval", "--data", str(data), "--limit", "44", "--seed", "0", "--enroll", "1",
        "--json", str(out), "--det", str(det), "--quiet",
        "--check-targets", "0.01", "--check-sizes", "20", "--repeats", "20",
        "--min-off-list", "20"])  # plumbing only: the real check needs 100
    assert rc == 0
    report = json.loads(out.read_text())
    # 22 identities enrolled; a reference enrollment would refuse (several faces, none clearly
    # the subject's) leaves its subject off the gallery, as it would leave them off a watchlist
    # (seed 0 refuses one here: 44 is the smallest slice from 40 up where one is refused).
    refused = report["counts"]["reference_images_refused"]
    assert report["n_gallery"] + refused == 22 and refused <= 2
    assert report["n_mated"] > 0 and report["n_nonmated"] > 0
    assert 0.9 <= report["rank1"] <= 1.0
    assert set(report["tpir_at_fpir"]) == {"0.1", "0.01", "0.001"}
    assert all(0.0 <= v <= 1.0 for v in report["tpir_at_fpir"].values())
    assert report["tpir_at_fpir"]["0.1"] >= 0.85
    cal = report["calibrated"]
    assert set(cal) >= {"target_fpir", "threshold", "measured_fpir", "tpir"}
    assert cal["target_fpir"] == 0.001
    assert 0.3 < cal["threshold"] < 0.9
    assert 0.0 <= cal["measured_fpir"] <= 0.05
    assert cal["tpir"] >= 0.8
    assert report["calibration_check"][0]["gallery_size"] == 20
    assert det.exists() and det.stat().st_size > 1000
