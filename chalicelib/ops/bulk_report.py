"""The journal and the report of a bulk enrollment (ops/bulk_enroll.py).

The journal is JSON lines: a header naming the watchlist and embedding space, then one line per
subject finished (the last line for an id wins), appended and flushed as each finishes, so a run
that crashed resumes from it. The report (CSV, one row per image; JSON summary beside it) is
written from the journal, so it covers every run on the list. Both name watchlist subjects: they
are created readable by their owner only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.matching.template import ReferenceResult
from chalicelib.ops.bulk_sources import BulkSubject

ENROLLED, ALREADY, REFUSED, DUPLICATE = "enrolled", "already_enrolled", "refused", "duplicate"
REPORT_COLUMNS = ["subject_id", "name", "where", "subject_status", "image", "image_status",
                  "code", "reason", "faces", "box", "quality"]


@dataclass
class BulkSummary:
    watchlist_id: str
    subjects: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # this run's input, by status
    images: int = 0
    images_refused: dict[str, int] = field(default_factory=dict)  # by code
    computed: int = 0  # subjects whose templates this run built
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system, this process and its (finished) workers
    workers: int = 0
    threads: int = 1

    @property
    def refusal_rate(self) -> float:
        return sum(self.images_refused.values()) / self.images if self.images else 0.0


def input_key(s: BulkSubject) -> str:
    """What, besides the subject id, decides a subject's outcome: a journaled refusal is
    reused only while these are unchanged."""
    hints = [asdict(h) if h else None for h in s.hints]
    text = json.dumps([s.source, s.reason, hints], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the journal --------------------------------------------------------------------------


class Journal:
    """JSON lines: a header naming the watchlist and embedding space, then one line per
    subject finished (the last line for an id wins). Appended and flushed per subject."""

    def __init__(self, path: Path, watchlist_id: str, model_id: str) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        header = {"journal": "lfr enroll-bulk", "watchlist_id": watchlist_id,
                  "model_id": model_id}
        if self.path.exists() and self.path.stat().st_size:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            first = json.loads(lines[0])
            if {k: first.get(k) for k in header} != header:
                raise ValueError(f"{self.path} is the journal of watchlist "
                                 f"{first.get('watchlist_id')} ({first.get('model_id')}): "
                                 "give another --journal")
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash: that subject is simply redone
                self.entries[entry["subject_id"]] = entry
            self._f = self.path.open("a", encoding="utf-8")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                                "w", encoding="utf-8")
            self._write(header)

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj) + "\n")
        self._f.flush()

    def add(self, entry: dict[str, Any]) -> None:
        self.entries[entry["subject_id"]] = entry
        self._write(entry)

    def close(self) -> None:
        self._f.close()


def entry_for(s: BulkSubject, status: str, results: Iterable[ReferenceResult] = (),
           problem: str = "") -> dict[str, Any]:
    images = [{"image": r.label, "code": r.code, "reason": r.reason, "faces": r.faces,
               "box": list(r.box) if r.box else None, "quality": r.quality} for r in results]
    return {"subject_id": s.subject_id, "name": s.name, "where": s.where, "status": status,
            "input": input_key(s), "problem": problem, "labels": s.labels, "images": images}


# --- the report -----------------------------------------------------------------------------


def count_images(summary: BulkSummary, subjects: list[BulkSubject],
                  entries: dict[str, dict[str, Any]], status: dict[str, str]) -> None:
    refused: Counter[str] = Counter()
    n = 0
    for s in subjects:
        if status.get(s.where) == DUPLICATE:
            continue
        for img in (entries.get(s.subject_id) or {}).get("images", []):
            n += 1
            if img["code"]:
                refused[img["code"]] += 1
    summary.images, summary.images_refused = n, dict(refused)


def _rows(s: BulkSubject, entry: dict[str, Any] | None, subject_status: str) -> Iterator[list]:
    base = [s.subject_id, s.name, s.where, subject_status]
    if subject_status == DUPLICATE:
        for label in s.labels or [""]:
            yield base + [label, "not_checked", DUPLICATE,
                          "the same name and images as an earlier row", "", "", ""]
        return
    images = (entry or {}).get("images") or []
    if images:
        for img in images:
            box = ",".join(str(v) for v in img["box"]) if img["box"] else ""
            yield base + [img["image"], "refused" if img["code"] else "used", img["code"],
                          img["reason"], img["faces"], box,
                          "" if img["quality"] is None else img["quality"]]
        return
    problem = (entry or {}).get("problem") or ""
    for label in s.labels or [""]:
        yield base + [label, "not_checked", "input" if problem else "", problem, "", "", ""]


def write_report(path: Path, subjects: list[BulkSubject], entries: dict[str, dict[str, Any]],
                 status: dict[str, str], summary: BulkSummary) -> None:
    """One CSV row per image (its subject's outcome, its own, why), and `summary` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(REPORT_COLUMNS)
        for s in subjects:
            entry = entries.get(s.subject_id)
            subject_status = status.get(s.where) or (entry or {}).get("status", "not_done")
            out.writerows(_rows(s, entry, subject_status))
    doc = {**asdict(summary), "refusal_rate": round(summary.refusal_rate, 4),
           "report": str(path)}
    json_path = path.with_suffix(".json")
    fd = os.open(json_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
