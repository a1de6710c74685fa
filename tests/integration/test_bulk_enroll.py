"""Bulk enrollment against moto server (issue 12, item 1): a folder or a manifest, a report of
every image refused and why, and a run that crashed resumes without enrolling anyone twice or
building again what it had finished."""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import cv2
import pytest

from chalicelib import cli
from chalicelib.ops import bulk_enroll, bulk_sources
from chalicelib.ops.bulk_enroll import BulkOptions, run_bulk
from chalicelib.ops.watchlists import create_watchlist
from tests.integration.conftest import demo_person
from tests.unit.test_enrollment_rule import pair_scene

PEOPLE = ["Cory_Gardner", "John_McCain", "Nancy_Pelosi"]


def _folder(root: Path) -> Path:
    """Three good subjects, an unreadable image, an empty folder, a photo of two people."""
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        shutil.copy(demo_person(name, 1), root / name / "1.jpg")
    (root / "Broken_Image").mkdir()
    (root / "Broken_Image" / "1.jpg").write_bytes(b"not an image at all")
    (root / "Empty_Folder").mkdir()
    (root / "Pair_Photo").mkdir()
    cv2.imwrite(str(root / "Pair_Photo" / "1.jpg"), pair_scene())
    return root


def _watchlist(rt: Any) -> str:
    return create_watchlist(rt.tables, "bulk", rt.model_id, created_by="operator-1",
                            watchlist_id=f"wl-bulk-{uuid.uuid4().hex[:8]}")


def _opts(tmp: Path, **kw: Any) -> BulkOptions:
    return BulkOptions(journal=tmp / "journal.jsonl", report=tmp / "report.csv",
                       progress=False, actor="operator-1", **kw)


def _report(path: Path) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["where"], []).append(row)
    return rows


def test_a_folder_is_enrolled_with_a_report_of_every_refusal(rt, tmp_path: Path) -> None:
    subjects = bulk_sources.from_folder(_folder(tmp_path / "in"), "test photos", "test")
    wid = _watchlist(rt)
    version = int(rt.tables.Watchlist.get(wid).version)
    summary = run_bulk(rt, wid, subjects, _opts(tmp_path, workers=2))  # a process pool
    assert summary.statuses == {"enrolled": 3, "refused": 3}
    on_list = {s.display_name: s for s in rt.tables.Subject.query(wid)}
    assert sorted(on_list) == ["Cory Gardner", "John McCain", "Nancy Pelosi"]
    assert all(s.source == "test photos" and s.reason == "test" for s in on_list.values())
    assert int(rt.tables.Watchlist.get(wid).version) == version + 1  # once per run
    rows = _report(tmp_path / "report.csv")
    assert rows["Broken_Image"][0]["code"] == "not_an_image"
    assert rows["Empty_Folder"][0]["reason"] == "no image"
    pair = rows["Pair_Photo"][0]
    assert pair["code"] == "ambiguous" and "choose one by index or box" in pair["reason"]
    assert pair["faces"] == "2" and pair["subject_status"] == "refused"
    cory = rows["Cory_Gardner"][0]
    assert cory["image_status"] == "used" and float(cory["quality"]) > 0.5
    assert len(cory["box"].split(",")) == 4
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["images"] == 5 and doc["images_refused"] == {"not_an_image": 1, "ambiguous": 1}
    assert doc["cpu_s"] > 0 and doc["workers"] == 2
    audit = [e.action for e in rt.tables.Audit.query(f"watchlist#{wid}")]
    assert audit.count("subject.added") == 3 and audit.count("watchlist.bulk_enrolled") == 1


def test_a_crashed_run_resumes_where_it_stopped(rt, tmp_path: Path, monkeypatch) -> None:
    subjects = bulk_sources.from_folder(_folder(tmp_path / "in"), "test photos", "test")
    wid = _watchlist(rt)
    computed: list[str] = []
    real_compute, real_store = bulk_enroll._compute, bulk_enroll.store_subject
    monkeypatch.setattr(bulk_enroll, "_compute",
                        lambda s: computed.append(s.name) or real_compute(s))
    stored: list[str] = []

    def crash_on_second(*a: Any, **kw: Any) -> None:
        if stored:
            raise RuntimeError("power cut")
        stored.append(a[5])
        real_store(*a, **kw)

    monkeypatch.setattr(bulk_enroll, "store_subject", crash_on_second)
    with pytest.raises(RuntimeError, match="power cut"):  # one writer: a fixed order
        run_bulk(rt, wid, subjects, _opts(tmp_path, workers=1, io_threads=1))
    assert stored == ["Cory Gardner"]  # Broken_Image was refused before it
    assert [s.display_name for s in rt.tables.Subject.query(wid)] == ["Cory Gardner"]
    assert _report(tmp_path / "report.csv")["John_McCain"][0]["subject_status"] == "not_done"

    monkeypatch.setattr(bulk_enroll, "store_subject", real_store)
    computed.clear()
    summary = run_bulk(rt, wid, subjects, _opts(tmp_path, workers=1))
    # Neither Cory Gardner (on the list) nor the refused image (journaled) is built again; the
    # run stopped at John McCain's write, before Pair Photo was reached.
    assert computed == ["John McCain", "Nancy Pelosi", "Pair Photo"]
    assert summary.statuses == {"already_enrolled": 1, "enrolled": 2, "refused": 3}
    assert sorted(s.display_name for s in rt.tables.Subject.query(wid)) == [
        "Cory Gardner", "John McCain", "Nancy Pelosi"]
    rows = _report(tmp_path / "report.csv")  # the whole story, across both runs
    assert rows["Broken_Image"][0]["code"] == "not_an_image"
    assert rows["Cory_Gardner"][0]["image_status"] == "used"
    # A third run has nothing left to do.
    computed.clear()
    again = run_bulk(rt, wid, subjects, _opts(tmp_path, workers=1))
    assert computed == [] and again.statuses == {"already_enrolled": 3, "refused": 3}


def test_a_manifest_with_a_face_choice_through_the_cli(rt, tmp_path: Path) -> None:
    images = tmp_path / "photos"
    images.mkdir()
    shutil.copy(demo_person("Cory_Gardner", 1), images / "cory.jpg")
    shutil.copy(demo_person("Cory_Gardner", 2), images / "cory-2.jpg")
    cv2.imwrite(str(images / "pair.jpg"), pair_scene())
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "images", "source", "reason", "faces"])
        w.writerow(["Cory Gardner", "photos/cory.jpg;photos/cory-2.jpg", "portraits", "", ""])
        w.writerow(["Nancy Pelosi", "photos/pair.jpg", "press photo", "warrant 2",
                    "240,50,350,210"])  # the right-hand face of the pair
        w.writerow(["Cory Gardner", "photos/cory.jpg;photos/cory-2.jpg", "portraits", "", ""])
        w.writerow(["No Source", "photos/cory.jpg", "", "", ""])  # no --source default either
        w.writerow(["Missing File", "photos/absent.jpg", "s", "r", ""])
        w.writerow(["Bad Choice", "photos/pair.jpg", "s", "r", "1;2"])
    wid = _watchlist(rt)
    report = tmp_path / "out.csv"
    rc = cli.main(["enroll-bulk", "--manifest", str(manifest), "--watchlist", wid,
                   "--reason", "warrant 1", "--workers", "1", "--quiet", "--by", "operator-1",
                   "--journal", str(tmp_path / "j.jsonl"), "--report", str(report)])
    assert rc == 0
    on_list = {s.display_name: s for s in rt.tables.Subject.query(wid)}
    assert sorted(on_list) == ["Cory Gardner", "Nancy Pelosi"]
    assert on_list["Cory Gardner"].reason == "warrant 1"  # the default for an empty reason
    assert int(on_list["Cory Gardner"].n_images) == 2
    rows = _report(report)
    assert rows["manifest.csv:4"][0]["subject_status"] == "duplicate"
    assert "no source or no reason" in rows["manifest.csv:5"][0]["reason"]
    assert "image not found: photos/absent.jpg" in rows["manifest.csv:6"][0]["reason"]
    assert "2 choices for 1 images" in rows["manifest.csv:7"][0]["reason"]
    # The chosen face is Nancy Pelosi's: her template matches her own portrait.
    from chalicelib.matching.template import build_template

    own = build_template(rt.pipeline, [("own", demo_person("Nancy_Pelosi", 1).read_bytes())])
    assert float(on_list["Nancy Pelosi"].embedding @ own.embedding) > 0.8


def test_a_manifest_without_its_columns_is_refused_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("name,pictures\nx,y.jpg\n")
    with pytest.raises(ValueError, match="lacks column"):
        bulk_sources.from_manifest(bad)
    ids = {bulk_sources.subject_id_for("A", ["a/1.jpg"]),
           bulk_sources.subject_id_for("A", ["a/2.jpg"]),
           bulk_sources.subject_id_for("B", ["a/1.jpg"])}
    assert len(ids) == 3 and all(i.startswith("s-") and len(i) == 18 for i in ids)


def test_a_worker_without_its_models_stops_the_run(rt, tmp_path: Path) -> None:
    from dataclasses import replace

    from chalicelib.runtime import Runtime
    from chalicelib.vision.models import ModelIntegrityError

    subjects = bulk_sources.from_folder(_folder(tmp_path / "in"), "test photos", "test")
    broken = Runtime(replace(rt.settings, detector_path=str(tmp_path / "absent.onnx"),
                             detector_sha256="0" * 64))
    wid = _watchlist(rt)
    with pytest.raises(ModelIntegrityError, match="not readable"):  # not a pool respawning
        run_bulk(broken, wid, subjects, _opts(tmp_path, workers=2))  # workers for ever
    assert list(rt.tables.Subject.query(wid)) == []


def test_a_list_authorised_during_a_run_gains_no_one_after(rt, tmp_path: Path,
                                                           monkeypatch) -> None:
    from chalicelib.ops.watchlists import LifecycleError, authorise_watchlist

    subjects = bulk_sources.from_folder(_folder(tmp_path / "in"), "test photos", "test")
    wid = _watchlist(rt)
    real_store = bulk_enroll.store_subject
    calls: list[str] = []

    def authorise_after_first(*a: Any, **kw: Any) -> None:
        real_store(*a, **kw)
        if not calls:  # the list is authorised while the run goes on
            authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wid,
                                "operator-2")
        calls.append(a[5])

    monkeypatch.setattr(bulk_enroll, "store_subject", authorise_after_first)
    with pytest.raises(LifecycleError, match="is authorised"):
        run_bulk(rt, wid, subjects, _opts(tmp_path, workers=1, io_threads=1))
    assert [s.display_name for s in rt.tables.Subject.query(wid)] == ["Cory Gardner"]
    with pytest.raises(LifecycleError, match="drafts only"):  # and a new run does not start
        run_bulk(rt, wid, subjects, _opts(tmp_path, workers=1))


def test_parallelism_keeps_every_core_busy() -> None:
    from chalicelib.ops.bulk_enroll import parallelism

    assert parallelism(1) == (1, 1)
    assert parallelism(2) == (1, 2)
    assert parallelism(16) == (8, 2)
    assert parallelism(16, workers=3) == (3, 2)
    assert parallelism(16, threads=1) == (16, 1)
