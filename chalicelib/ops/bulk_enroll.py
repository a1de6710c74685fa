"""Bulk enrollment (`lfr enroll-bulk`): many subjects, models loaded once per process, every
core busy, resumable after a crash, and a per-image report of what was refused and why.

- Templates are built with the same code as every other enrollment (matching/template.py): in
  this process, or in a spawn pool of processes with one onnxruntime session set each
  (parallelism()). Threads of this process write each subject (watchlists.store_subject); this
  process journals each outcome (ops/bulk_report.py).
- Resuming: subject ids come from the input (ops/bulk_sources.py); a subject already in the
  watchlist table is skipped, and so is one the journal records as refused for the same input
  (name, images, face choices, source, reason) unless `retry_refused`.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chalicelib.matching.template import ReferenceResult, Template, template_of
from chalicelib.ops import audit
from chalicelib.ops.bulk_report import (
    ALREADY,
    DUPLICATE,
    ENROLLED,
    REFUSED,
    BulkSummary,
    Journal,
    count_images,
    entry_for,
    input_key,
    write_report,
)
from chalicelib.ops.bulk_sources import BulkSubject
from chalicelib.ops.watchlists import (
    AlreadyEnrolled,
    check_enrollable,
    enrolled_ids,
    store_subject,
)
from chalicelib.settings import Settings


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
    template = template_of(results)
    template = replace(template, results=[replace(r, embedding=None) for r in results])
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
                    journal.add(entry_for(s, ALREADY))
            elif s.problem:
                status[s.where] = REFUSED
                journal.add(entry_for(s, REFUSED, problem=s.problem))
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
        summary.wall_s = round(time.monotonic() - t0, 2)
        summary.cpu_s = round(_cpu_s() - c0, 2)
        count_images(summary, subjects, journal.entries, status)
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
        journal.add(entry_for(s, outcome, results))
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


