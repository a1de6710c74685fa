"""Bulk enrollment (`lfr enroll-bulk`): many subjects, models loaded once per worker process,
every core busy, resumable after a crash, and a per-image report of what was refused and why.

- Workers (a spawn pool, one onnxruntime session set each) read the images and build the
  templates with the same code as every other enrollment (matching/template.py); the main
  process writes each subject (watchlists.store_subject) and appends its outcome to a journal.
- Resuming: subject ids come from the input (ops/bulk_sources.py); a subject already in the
  watchlist table is skipped, and so is one the journal records as refused for the same input
  (name, images, face choices, source, reason) unless `retry_refused`.
- The report (CSV, one row per image; and a JSON summary) is written from the journal, so it
  covers every run that worked on this list. Journal and report name watchlist subjects: they
  are created readable by their owner only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chalicelib.matching.template import ReferenceResult, Template, fuse_embeddings
from chalicelib.ops import audit
from chalicelib.ops.bulk_sources import BulkSubject
from chalicelib.ops.watchlists import (
    AlreadyEnrolled,
    check_enrollable,
    enrolled_ids,
    store_subject,
)
from chalicelib.settings import Settings

ENROLLED, ALREADY, REFUSED, DUPLICATE = "enrolled", "already_enrolled", "refused", "duplicate"
REPORT_COLUMNS = ["subject_id", "name", "where", "subject_status", "image", "image_status",
                  "code", "reason", "faces", "box", "quality"]


@dataclass(frozen=True)
class BulkOptions:
    journal: Path
    report: Path  # CSV; the JSON summary goes beside it (.json)
    workers: int = 0  # processes building templates; 0: see parallelism()
    threads: int = 0  # onnxruntime threads per process; 0: see parallelism()
    io_threads: int = 4  # subjects written at once (the writes wait on the network)
    retry_refused: bool = False
    progress: bool = True
    actor: str = "operator"


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


def _entry(s: BulkSubject, status: str, results: Iterable[ReferenceResult] = (),
           problem: str = "") -> dict[str, Any]:
    images = [{"image": r.label, "code": r.code, "reason": r.reason, "faces": r.faces,
               "box": list(r.box) if r.box else None, "quality": r.quality} for r in results]
    return {"subject_id": s.subject_id, "name": s.name, "where": s.where, "status": status,
            "input": input_key(s), "problem": problem, "labels": s.labels, "images": images}


# --- the workers ----------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(settings: Settings) -> None:
    from chalicelib.vision.factory import build_pipeline

    try:
        _WORKER["pipeline"] = build_pipeline(settings)
    except Exception as exc:  # a pool respawns a worker whose initializer raises, for ever:
        _WORKER["error"] = exc  # fail its first task instead, and so the run
    _WORKER["max_pixels"] = settings.max_reference_pixels


def _compute(s: BulkSubject) -> tuple[BulkSubject, list[ReferenceResult], Any]:
    """Every image's outcome, and the template (None when any image was refused)."""
    from chalicelib.matching.template import assess_reference

    if "error" in _WORKER:
        raise _WORKER["error"]
    results = []
    for path, label, hint in zip(s.images, s.labels, s.hints, strict=True):
        try:
            data = path.read_bytes()
        except OSError as exc:
            results.append(ReferenceResult(label, "unreadable", f"{label}: {exc.strerror}"))
            continue
        results.append(assess_reference(_WORKER["pipeline"], label, data, hint,
                                        _WORKER["max_pixels"]))
    if not all(r.used for r in results):
        return s, [replace(r, embedding=None) for r in results], None
    quality = [float(r.quality) for r in results]  # type: ignore[arg-type]
    import numpy as np

    template = Template(fuse_embeddings(np.stack([r.embedding for r in results]), quality),
                        quality, [replace(r, embedding=None) for r in results])
    return s, template.results, template


def _computed(subjects: list[BulkSubject], settings: Settings,
              workers: int) -> Iterator[tuple[BulkSubject, list[ReferenceResult], Any]]:
    if not subjects:
        return
    if workers <= 1:
        _init_worker(settings)
        for s in subjects:
            yield _compute(s)
        return
    ctx = multiprocessing.get_context("spawn")  # a fork would copy the parent's AWS clients
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        yield from pool.imap_unordered(_compute, subjects, chunksize=2)


# --- the run --------------------------------------------------------------------------------


def parallelism(cores: int, workers: int = 0, threads: int = 0) -> tuple[int, int]:
    """(processes, onnxruntime threads each) to keep `cores` busy; given values are kept.

    Two threads per process: on this project's 2-core machine one process with two threads
    built templates 13% faster (median of 6 interleaved pairs; shared machine) than two
    processes, without their start-up (3-10 s) or a second copy of the models (~330 MB); more
    threads per process scale less well on models this small (SFace: 1.74x from 2 threads)."""
    threads = threads or (2 if cores >= 2 else 1)
    workers = workers or max(1, cores // threads)
    return workers, threads


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_bulk(rt: Any, watchlist_id: str, subjects: list[BulkSubject],
             opts: BulkOptions) -> BulkSummary:
    """Enroll `subjects` into the draft watchlist; see the module doc. `rt`: a Runtime."""
    from chalicelib.vision.factory import embedding_id

    t0, c0 = time.monotonic(), _cpu_s()
    workers, threads = parallelism(os.cpu_count() or 1, opts.workers, opts.threads)
    settings = replace(rt.settings, onnx_threads=threads)
    model_id = embedding_id(settings)
    tables, s3, bucket = rt.tables, rt.client("s3"), rt.settings.evidence_bucket
    check_enrollable(tables, watchlist_id, model_id)
    journal = Journal(opts.journal, watchlist_id, model_id)
    summary = BulkSummary(watchlist_id, len(subjects), workers=workers, threads=threads)
    status: dict[str, str] = {}  # this run's outcome per input row (BulkSubject.where)
    try:
        existing = enrolled_ids(tables, watchlist_id)
        todo, seen = [], {}
        for s in subjects:
            before = journal.entries.get(s.subject_id)
            if s.subject_id in seen:
                status[s.where] = DUPLICATE
                continue
            if s.subject_id in existing:
                status[s.where] = ALREADY
                if before is None or before["status"] != ENROLLED:
                    journal.add(_entry(s, ALREADY))
            elif s.problem:
                status[s.where] = REFUSED
                journal.add(_entry(s, REFUSED, problem=s.problem))
            elif (before and before["status"] == REFUSED and before["input"] == input_key(s)
                  and not opts.retry_refused):
                status[s.where] = REFUSED  # as journaled
            else:
                todo.append(s)
            seen[s.subject_id] = s.where
        enrolled = _enroll(tables, s3, bucket, watchlist_id, model_id, todo, settings,
                           workers, opts, journal, status)
        summary.computed = len(todo)
        if enrolled:
            w = tables.Watchlist
            w(watchlist_id).update(actions=[w.version.add(1)], condition=w.status == "draft")
            audit.record(tables, audit.watchlist_scope(watchlist_id), opts.actor,
                         "watchlist.bulk_enrolled", watchlist_id, subjects=enrolled)
    finally:
        journal.close()
        summary.statuses = dict(Counter(status.values()))
        summary.wall_s, summary.cpu_s = time.monotonic() - t0, _cpu_s() - c0
        _count_images(summary, subjects, journal.entries, status)
        write_report(opts.report, subjects, journal.entries, status, summary)
    return summary


def _enroll(tables: Any, s3: Any, bucket: str, watchlist_id: str, model_id: str,
            todo: list[BulkSubject], settings: Settings, workers: int, opts: BulkOptions,
            journal: Journal, status: dict[str, str]) -> int:
    """Templates from the worker processes; each subject written by a thread of this process
    (the writes wait on the network: 4 requests, ~50 ms against moto server); outcomes
    journaled here, one at a time."""
    from tqdm import tqdm

    counts: Counter[str] = Counter()

    def store(s: BulkSubject, template: Template) -> str:
        try:
            # The planning query found it absent: no second look per subject.
            store_subject(tables, s3, bucket, watchlist_id, s.subject_id, s.name, template,
                          s.images[0].read_bytes(), model_id, source=s.source, reason=s.reason,
                          actor=opts.actor, only_new=True, bump_version=False, precheck=False)
        except AlreadyEnrolled:
            return ALREADY
        return ENROLLED

    def finish(s: BulkSubject, outcome: str, results: list[ReferenceResult]) -> None:
        journal.add(_entry(s, outcome, results))
        status[s.where] = outcome
        counts[outcome] += 1
        bar.set_postfix(counts, refresh=False)
        bar.update(1)

    def settle(futures: set[Future[str]]) -> None:
        """Journal what was written; then a failed write stops the run (it resumes)."""
        failed = None
        for f in futures:
            s, results = pending.pop(f)
            if f.exception() is None:
                finish(s, f.result(), results)
            else:
                failed = failed or f.exception()
        if failed is not None:
            raise failed

    pending: dict[Future[str], tuple[BulkSubject, list[ReferenceResult]]] = {}
    with tqdm(total=len(todo), unit="subject", disable=not opts.progress,
              smoothing=0.05) as bar, ThreadPoolExecutor(max(1, opts.io_threads)) as io:
        for s, results, template in _computed(todo, settings, min(workers, len(todo))):
            if template is None:
                finish(s, REFUSED, results)
                continue
            pending[io.submit(store, s, template)] = (s, results)
            if len(pending) >= 2 * opts.io_threads:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                settle(done)
        settle(set(wait(pending).done))
    return counts[ENROLLED]


# --- the report -----------------------------------------------------------------------------


def _count_images(summary: BulkSummary, subjects: list[BulkSubject],
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
