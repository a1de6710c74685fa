"""The operator's commands: `lfr enroll`, `enroll-bulk`, `authorise`, `deployment create` and
`lfr dlq`. The add_* functions register them; chalicelib/cli.py places them in the `lfr` command
and hands each the runtime to act through (a layer above ops: the local stack's settings)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR
from chalicelib.settings import WORK_DIR

# Settings, tables, clients and the models of the place the command acts on (runtime.Runtime).
RuntimeFactory = Callable[[], Any]


def cmd_enroll(args: argparse.Namespace) -> int:
    from chalicelib.matching.subject_face import FaceHint
    from chalicelib.matching.template import EnrollmentError
    from chalicelib.ops.watchlists import create_watchlist, enroll_subject

    faces = args.face or []
    if len(faces) > len(args.image):
        print("more --face than --image", file=sys.stderr)
        return 2
    try:
        hints = [FaceHint.parse(f) if f not in ("", "-") else None for f in faces]
    except ValueError as exc:
        print(f"not enrolled: {exc}", file=sys.stderr)
        return 2
    hints += [None] * (len(args.image) - len(hints))
    rt = args.runtime()
    tables = rt.tables
    if args.create:
        create_watchlist(tables, args.watchlist, rt.pipeline.model_id,
                         watchlist_id=args.watchlist, created_by=args.by)
    images = [(p, Path(p).read_bytes()) for p in args.image]
    try:
        done = enroll_subject(
            tables, rt.client("s3"), rt.settings.evidence_bucket, rt.pipeline, args.watchlist,
            args.name, images, source=args.source, reason=args.reason, actor=args.by,
            hints=hints, max_pixels=rt.settings.max_reference_pixels,
        )
    except EnrollmentError as exc:
        print(f"not enrolled: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"subject_id": done.subject_id, "image_quality": done.image_quality}))
    return 0


def _bulk_subjects(args: argparse.Namespace) -> list[Any] | None:
    """The subjects of --folder or --manifest (the first --limit); None, with the reason printed,
    where they cannot be read."""
    from chalicelib.ops import bulk_sources

    try:
        if args.folder:
            if not (args.source and args.reason):
                print("--folder needs --source and --reason (they apply to every subject)",
                      file=sys.stderr)
                return None
            subjects = bulk_sources.from_folder(Path(args.folder), args.source, args.reason,
                                                args.max_images)
        else:
            subjects = bulk_sources.from_manifest(Path(args.manifest), args.source or "",
                                                  args.reason or "")
    except (OSError, ValueError) as exc:
        print(f"cannot read the input: {exc}", file=sys.stderr)
        return None
    return subjects if args.limit is None else subjects[: args.limit]


def cmd_enroll_bulk(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from chalicelib.ops.bulk_enroll import BulkOptions, run_bulk
    from chalicelib.ops.watchlists import LifecycleError, create_watchlist
    from chalicelib.settings import ConfigurationError
    from chalicelib.vision.factory import embedding_id

    subjects = _bulk_subjects(args)
    if subjects is None:
        return 2
    rt = args.runtime()
    if args.create:
        create_watchlist(rt.tables, args.watchlist, embedding_id(rt.settings),
                         watchlist_id=args.watchlist, created_by=args.by)
    opts = BulkOptions(
        journal=Path(args.journal or WORK_DIR / f"enroll-{args.watchlist}.journal.jsonl"),
        report=Path(args.report or f"enroll-{args.watchlist}-report.csv"),
        workers=args.workers, threads=args.threads, retry_refused=args.retry_refused,
        progress=not args.quiet, actor=args.by)
    try:
        summary = run_bulk(rt, args.watchlist, subjects, opts)
    except (LifecycleError, ConfigurationError, ValueError) as exc:  # not a draft, no model...
        print(f"stopped: {exc} (what was done is in {opts.journal}; run again to resume)",
              file=sys.stderr)
        return 2
    out = asdict(summary)
    out["refusal_rate"] = round(summary.refusal_rate, 4)
    out["report"] = str(opts.report)
    print(json.dumps(out))
    return 0


def cmd_deployment_create(args: argparse.Namespace) -> int:
    from chalicelib.ops.deployments import create_deployment_checked

    rt = args.runtime()
    made = create_deployment_checked(
        rt.tables, args.name, args.watchlist, args.camera, args.threshold, place=args.place,
        deployment_id=args.id, target_fpir=args.target_fpir, created_by=args.by,
        differentials_path=rt.settings.differentials_path)
    for w in made.warnings:
        print(f"warning: {w['message']}", file=sys.stderr)
    print(json.dumps({"deployment_id": made.deployment_id, "threshold": made.threshold,
                      "warnings": made.warnings}))
    return 0


def cmd_watchlist_authorise(args: argparse.Namespace) -> int:
    from chalicelib.ops.watchlists import LifecycleError, authorise_watchlist

    try:
        rt = args.runtime()
        authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                            args.watchlist, args.by)
    except LifecycleError as exc:
        print(f"not authorised: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"watchlist_id": args.watchlist, "status": "authorised"}))
    return 0


def cmd_dlq_list(args: argparse.Namespace) -> int:
    from chalicelib.names import dlq_name
    from chalicelib.ops.dlq import list_dead_letters, source_queue

    rt = args.runtime()
    s = rt.settings
    letters = list_dead_letters(rt.client("sqs"), rt.client("s3"), s, args.queue, args.max)
    dlq = dlq_name(source_queue(s, args.queue))
    print(json.dumps({"queue": args.queue, "dead_letter_queue": dlq, "count": len(letters),
                      "messages": [d.public() for d in letters]}, indent=2))
    return 0


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from chalicelib.ops.dlq import redrive

    rt = args.runtime()
    report = redrive(rt.client("sqs"), rt.client("s3"), rt.settings, args.queue,
                     None if args.all else args.id)
    print(json.dumps({"queue": args.queue, "moved": report.moved, "not_found": report.not_found,
                      "failed": report.failed}, indent=2))
    return 1 if report.failed or report.not_found else 0


def add_dlq(sub: Any, runtime: RuntimeFactory) -> None:
    dq = sub.add_parser("dlq", help="dead-lettered frame batches and alerts: why, and redrive")
    qsub = dq.add_subparsers(dest="action", required=True)
    ql = qsub.add_parser("list", help="what is dead-lettered and why (does not consume)")
    ql.add_argument("--queue", choices=["frames", "alerts"], default="frames")
    ql.add_argument("--max", type=int, default=100, help="list at most this many")
    ql.set_defaults(func=cmd_dlq_list, runtime=runtime)
    qr = qsub.add_parser("redrive", help="send dead letters back to their source queue")
    qr.add_argument("--queue", choices=["frames", "alerts"], default="frames")
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append",
                       help="a message id from `lfr dlq list` (repeat for more)")
    which.add_argument("--all", action="store_true", help="every message of that DLQ")
    qr.set_defaults(func=cmd_dlq_redrive, runtime=runtime)


def add_enroll(sub: Any, runtime: RuntimeFactory) -> None:
    en = sub.add_parser("enroll", help="enroll a watchlist subject from reference images")
    en.add_argument("--watchlist", required=True)
    en.add_argument("--name", required=True)
    en.add_argument("--image", action="append", required=True, help="repeat for more images")
    en.add_argument("--source", help="where the reference image came from")
    en.add_argument("--reason", help="why this person is on the watchlist")
    en.add_argument("--create", action="store_true", help="create the watchlist first")
    en.add_argument("--by", default="operator", help="who enrolls (for the audit trail)")
    en.add_argument("--face", action="append", metavar="INDEX|X1,Y1,X2,Y2",
                    help="which face, per --image in order ('-' for the rule's choice), where "
                         "a photo was refused as ambiguous: an index or a box from the refusal")
    en.set_defaults(func=cmd_enroll, runtime=runtime)


def add_enroll_bulk(sub: Any, runtime: RuntimeFactory) -> None:
    eb = sub.add_parser(
        "enroll-bulk", help="enroll many subjects from a folder or a manifest CSV (resumable)",
        description="Models loaded once per worker, every core busy, a progress bar, a journal "
                    "to resume from after a crash (subjects already on the list are skipped) "
                    "and a per-image report of what was refused and why.")
    src = eb.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", help="one sub-folder per subject (as demo/people)")
    src.add_argument("--manifest", help="CSV with columns name, images (';'-separated, "
                                        "relative to the CSV), source, reason; optional faces")
    eb.add_argument("--watchlist", required=True)
    eb.add_argument("--create", action="store_true", help="create the watchlist first")
    eb.add_argument("--source", help="where the images came from (default for every subject)")
    eb.add_argument("--reason", help="why these people are listed (default for every subject)")
    eb.add_argument("--by", default="operator", help="who enrolls (for the audit trail)")
    eb.add_argument("--workers", type=int, default=0,
                    help="processes building templates (default: cores / threads)")
    eb.add_argument("--threads", type=int, default=0,
                    help="onnxruntime threads per process (default: 2 where there are 2 cores)")
    eb.add_argument("--max-images", type=int, default=10,
                    help="--folder: images per subject, first by name (default and most: 10)")
    eb.add_argument("--limit", type=int, help="the first N subjects only")
    eb.add_argument("--journal", help="default .lfr/enroll-<watchlist>.journal.jsonl")
    eb.add_argument("--report", help="per-image CSV (and .json summary beside it); "
                                     "default enroll-<watchlist>-report.csv")
    eb.add_argument("--retry-refused", action="store_true",
                    help="build again subjects the journal records as refused")
    eb.add_argument("--quiet", action="store_true", help="no progress bar")
    eb.set_defaults(func=cmd_enroll_bulk, runtime=runtime)


def add_deployment(sub: Any, runtime: RuntimeFactory) -> None:
    dp = sub.add_parser("deployment", help="deployments")
    dsub = dp.add_subparsers(dest="action", required=True)
    dc = dsub.add_parser("create", help="create a deployment on a watchlist")
    dc.add_argument("--name", required=True)
    dc.add_argument("--watchlist", required=True)
    dc.add_argument("--camera", action="append", required=True, help="repeat for more cameras")
    dc.add_argument("--target-fpir", type=float, default=DEFAULT_TARGET_FPIR,
                    help="false alerts per passer-by to calibrate the threshold for "
                         f"(default {DEFAULT_TARGET_FPIR:g}: docs/accuracy.md, operating points)")
    dc.add_argument("--threshold", type=float, help="a fixed threshold instead of calibration")
    dc.add_argument("--by", default="operator", help="who creates it (for the audit trail)")
    dc.add_argument("--place")
    dc.add_argument("--id")
    dc.set_defaults(func=cmd_deployment_create, runtime=runtime)


def add_authorise(sub: Any, runtime: RuntimeFactory) -> None:
    wa = sub.add_parser("authorise", help="authorise a draft watchlist (not by its author)")
    wa.add_argument("--watchlist", required=True)
    wa.add_argument("--by", required=True, help="the authorising operator")
    wa.set_defaults(func=cmd_watchlist_authorise, runtime=runtime)
