"""The `lfr` command: local stack, enrollment, camera gateway, dead letters, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from chalicelib.local.state import STATE
from chalicelib.local.state import local_settings as _settings
from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR


def cmd_local_up(args: argparse.Namespace) -> int:
    import subprocess

    from chalicelib.local import localstack, moto_server, resources
    from chalicelib.settings import Settings

    if STATE.exists():
        print(f"a local stack is already up ({STATE}); run `lfr local down` first")
        return 1
    STATE.parent.mkdir(exist_ok=True)
    server = moto_server.start(args.port, log_path=STATE.parent / "moto.log")
    aws_env, ls_server = server.env(), None
    if args.backend == "localstack":
        # LocalStack for every service it serves; DynamoDB and Cognito stay on moto server.
        try:
            ls_server = localstack.start(args.localstack_port,
                                         log_path=STATE.parent / "localstack.log",
                                         root=STATE.parent / "localstack")
        except (localstack.LocalStackUnavailable, RuntimeError) as exc:
            moto_server.stop(server)
            print(f"LocalStack did not start: {exc}", file=sys.stderr)
            return 2
        aws_env = localstack.mixed_env(ls_server.endpoint, server.endpoint)
    # The local API verifies its own tokens (`lfr token`) and signs alert links: per-stack secrets.
    env = {**aws_env, "LFR_STAGE": args.stage,
           "LFR_LOCAL_AUTH_SECRET": secrets.token_hex(16), "LFR_LINK_SECRET": secrets.token_hex(16)}
    os.environ.update(env)
    resources.create_all(Settings.from_env())
    pump_log = open(STATE.parent / "pump.log", "ab")  # noqa: SIM115
    pump = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "local", "pump"],
        env={**os.environ, **env},
        stdout=pump_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    keep = [k for k in env if k.startswith("AWS_ENDPOINT_URL")] + [
        "LFR_STAGE", "LFR_LOCAL_AUTH_SECRET", "LFR_LINK_SECRET"]
    state = {"env": {k: env[k] for k in keep}, "backend": args.backend,
             "moto_pid": server.process.pid if server.process else None, "pump_pid": pump.pid,
             "localstack_pid": ls_server.process.pid if ls_server and ls_server.process else None}
    STATE.write_text(json.dumps(state, indent=2))
    where = f"moto server {server.endpoint}"
    if ls_server:
        where = f"LocalStack {ls_server.endpoint} (DynamoDB, Cognito: {where})"
    print(f"local stack up: {where}, stage {args.stage}, "
          f"event pump pid {pump.pid} (logs in {STATE.parent}/)")
    print("use it from a shell (e.g. `.venv/bin/chalice local --stage local` for the API and "
          "the console at /console) with:")
    for k, v in {**moto_server.LOCAL_ENV, **state["env"]}.items():
        print(f"  export {k}={v}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """A signed token for the local API (on AWS, Cognito issues them)."""
    from chalicelib.auth import issue_local_token

    s = _settings()
    if not s.local_auth_secret:
        print("no LFR_LOCAL_AUTH_SECRET: tokens are for the local stack only", file=sys.stderr)
        return 2
    print(issue_local_token(s.local_auth_secret, args.sub, args.role, args.deployment or (),
                            args.camera, ttl_s=args.ttl))
    return 0


def cmd_local_down(args: argparse.Namespace) -> int:
    if not STATE.exists():
        print("no local stack is up")
        return 0
    state = json.loads(STATE.read_text())
    for key in ("pump_pid", "localstack_pid", "moto_pid"):
        pid = state.get(key)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    STATE.unlink()
    print("local stack down")
    return 0


def cmd_local_pump(args: argparse.Namespace) -> int:
    import logging

    from chalicelib.local.pump import EventPump, app_mappings, load_app

    logging.basicConfig(level=logging.INFO)
    settings = _settings()
    pump = EventPump(settings, app_mappings(load_app(), settings))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"event pump delivering {settings.frames_queue} and {settings.alerts_queue}", flush=True)
    pump.start()  # one thread per queue: alerts are pushed while frames are being processed
    try:
        while True:
            time.sleep(3600)
    finally:
        pump.stop()


def cmd_enroll(args: argparse.Namespace) -> int:
    from chalicelib.matching.subject_face import FaceHint
    from chalicelib.matching.template import EnrollmentError
    from chalicelib.ops.watchlists import create_watchlist, enroll_subject
    from chalicelib.runtime import Runtime

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
    rt = Runtime(_settings())
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


def cmd_enroll_bulk(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from chalicelib.ops import bulk_sources
    from chalicelib.ops.bulk_enroll import BulkOptions, run_bulk
    from chalicelib.ops.watchlists import LifecycleError, create_watchlist
    from chalicelib.runtime import Runtime
    from chalicelib.settings import ConfigurationError
    from chalicelib.vision.factory import embedding_id

    try:
        if args.folder:
            if not (args.source and args.reason):
                print("--folder needs --source and --reason (they apply to every subject)",
                      file=sys.stderr)
                return 2
            subjects = bulk_sources.from_folder(Path(args.folder), args.source, args.reason,
                                                args.max_images)
        else:
            subjects = bulk_sources.from_manifest(Path(args.manifest), args.source or "",
                                                  args.reason or "")
    except (OSError, ValueError) as exc:
        print(f"cannot read the input: {exc}", file=sys.stderr)
        return 2
    if args.limit is not None:
        subjects = subjects[: args.limit]
    rt = Runtime(_settings())
    if args.create:
        create_watchlist(rt.tables, args.watchlist, embedding_id(rt.settings),
                         watchlist_id=args.watchlist, created_by=args.by)
    opts = BulkOptions(
        journal=Path(args.journal or STATE.parent / f"enroll-{args.watchlist}.journal.jsonl"),
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
    from chalicelib.runtime import Runtime

    rt = Runtime(_settings())
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
    from chalicelib.runtime import Runtime

    try:
        rt = Runtime(_settings())
        authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket,
                            args.watchlist, args.by)
    except LifecycleError as exc:
        print(f"not authorised: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"watchlist_id": args.watchlist, "status": "authorised"}))
    return 0


def _local_grant(s: Any, deployment_id: str, camera_id: str) -> dict[str, Any]:
    """An upload grant made with the local stack's own credentials (`lfr gateway` without
    --api or --grant)."""
    from chalicelib.clients import client
    from chalicelib.ops.cameras import camera_upload_grant

    return camera_upload_grant(client("s3", s), s.frames_bucket, deployment_id, camera_id,
                               s.max_batch_bytes)


def cmd_dlq_list(args: argparse.Namespace) -> int:
    from chalicelib.clients import client
    from chalicelib.names import dlq_name
    from chalicelib.ops.dlq import list_dead_letters, source_queue

    s = _settings()
    letters = list_dead_letters(client("sqs", s), client("s3", s), s, args.queue, args.max)
    dlq = dlq_name(source_queue(s, args.queue))
    print(json.dumps({"queue": args.queue, "dead_letter_queue": dlq, "count": len(letters),
                      "messages": [d.public() for d in letters]}, indent=2))
    return 0


def cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from chalicelib.clients import client
    from chalicelib.ops.dlq import redrive

    s = _settings()
    report = redrive(client("sqs", s), client("s3", s), s, args.queue,
                     None if args.all else args.id)
    print(json.dumps({"queue": args.queue, "moved": report.moved, "not_found": report.not_found,
                      "failed": report.failed}, indent=2))
    return 1 if report.failed or report.not_found else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chalicelib.demo import run_demo

    return run_demo(Path(args.out), backend=args.backend)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lfr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the local AWS stack (moto server + event pump)")
    lsub = local.add_subparsers(dest="action", required=True)
    up = lsub.add_parser("up", help="start moto server, create every resource, start the pump")
    up.add_argument("--port", type=int, default=5055, help="moto server's port")
    up.add_argument("--stage", default="local")
    up.add_argument("--backend", choices=("moto", "localstack"), default="moto",
                    help="localstack: LocalStack in host mode for every service it serves, "
                         "DynamoDB and Cognito on moto server (docs/deploy.md)")
    up.add_argument("--localstack-port", type=int, default=4566)
    up.set_defaults(func=cmd_local_up)
    lsub.add_parser("down", help="stop what `local up` started").set_defaults(func=cmd_local_down)
    lsub.add_parser("pump", help="run the event pump in the foreground").set_defaults(
        func=cmd_local_pump)

    dq = sub.add_parser("dlq", help="dead-lettered frame batches and alerts: why, and redrive")
    qsub = dq.add_subparsers(dest="action", required=True)
    ql = qsub.add_parser("list", help="what is dead-lettered and why (does not consume)")
    ql.add_argument("--queue", choices=["frames", "alerts"], default="frames")
    ql.add_argument("--max", type=int, default=100, help="list at most this many")
    ql.set_defaults(func=cmd_dlq_list)
    qr = qsub.add_parser("redrive", help="send dead letters back to their source queue")
    qr.add_argument("--queue", choices=["frames", "alerts"], default="frames")
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append",
                       help="a message id from `lfr dlq list` (repeat for more)")
    which.add_argument("--all", action="store_true", help="every message of that DLQ")
    qr.set_defaults(func=cmd_dlq_redrive)

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
    en.set_defaults(func=cmd_enroll)

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
    eb.set_defaults(func=cmd_enroll_bulk)

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
    dc.set_defaults(func=cmd_deployment_create)

    tk = sub.add_parser("token", help="a signed token for the local API")
    tk.add_argument("--sub", required=True, help="who (e.g. officer-1)")
    tk.add_argument("--role", action="append", required=True,
                    choices=["operator", "officer", "auditor", "camera"])
    tk.add_argument("--deployment", action="append", help="an officer's deployments")
    tk.add_argument("--camera", help="a camera's <deployment>/<camera>")
    tk.add_argument("--ttl", type=int, default=3600)
    tk.set_defaults(func=cmd_token)

    wa = sub.add_parser("authorise", help="authorise a draft watchlist (not by its author)")
    wa.add_argument("--watchlist", required=True)
    wa.add_argument("--by", required=True, help="the authorising operator")
    wa.set_defaults(func=cmd_watchlist_authorise)


    from chalicelib.batch.cli import add_commands as add_batch
    from chalicelib.evaluation.cli import add_commands as add_eval
    from chalicelib.gateway.command import add_commands as add_gateway

    add_gateway(sub, local_grant=_local_grant)
    add_eval(sub)
    add_batch(sub)

    demo = sub.add_parser("demo", help="the whole stream path end to end on a local stack")
    demo.add_argument("--out", default="demo-out")
    demo.add_argument("--backend", choices=("moto", "localstack"), default="moto",
                      help="the local AWS to run on (localstack: DynamoDB on moto server)")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
