"""Cold-start benchmark (not a test): CPU seconds from a fresh worker process to its first
decision, with a police-size watchlist, against moto server. Prints figures, asserts nothing.

Each run is a new Python process that does what a Lambda cold start does: imports the app,
receives one frames-queue event (one frame batch with a watchlisted face), loads the models and
the watchlist, and decides (the alert row, the crop and the alerts-queue message included).
CPU time is the child's own getrusage (all threads) when its first decision is made: from the
process's start (interpreter and all) to the end of the first invocation, not its exit.
Configurations, measured in the same run:

  before             the models as the wheels ship them (graph fixed at load, `onnx` imported)
                     and the watchlist read row by row from DynamoDB (as before issue 12 item 3)
  prepared models    the inference layer's prepared recognizer; watchlist from the table
  snapshot           the wheels' models; the watchlist from its snapshot
  deployed           prepared models and the snapshot (what a Lambda with the layer does)
  deployed, no .pyc  the same, every module compiled from source (PYTHONPYCACHEPREFIX set to an
                     empty folder): the worst case for packages shipped without bytecode

The watchlist holds --subjects templates: one enrolled from a demo photo (the face in the
batch), the rest random unit vectors written straight to the subject table (loading cost does not
depend on whose faces they are). The same list is authorised twice: one copy keeps its snapshot,
the other has it taken off its row, so its worker reads the table (the refusal path, "none").

    .venv/bin/python benchmarks/cold_start.py [--subjects 17000] [--runs 3] [--baseline REV]
    .venv/bin/python benchmarks/cold_start.py --snapshot-only 1000000   # pack/unpack alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if "--child" not in sys.argv:  # a child imports the tree on its PYTHONPATH (a baseline's)
    sys.path.insert(0, str(ROOT))

PERSON = ROOT / "demo" / "people" / "Cory_Gardner"
CONFIGS = {
    "before": {"models": "wheels", "watchlist": "table"},
    "prepared models": {"models": "prepared", "watchlist": "table"},
    "snapshot": {"models": "wheels", "watchlist": "snapshot"},
    "deployed": {"models": "prepared", "watchlist": "snapshot"},
    # The same with no bytecode cache anywhere: every module compiled from source, as on a
    # Lambda whose packages carry no .pyc for its Python (the layer is built --no-compile).
    "deployed, no .pyc": {"models": "prepared", "watchlist": "snapshot", "pyc": "none"},
}


def child() -> None:
    """One cold start: read the event, import the app, invoke the worker once."""
    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    event = json.loads(sys.stdin.read())
    t0 = cpu()
    from chalicelib.local.pump import LambdaContext, load_app

    app = load_app()
    t1 = cpu()
    result = app.handler_map["frames_worker"](event, LambdaContext("frames_worker"))
    t2 = cpu()
    from chalicelib.runtime import runtime

    cache = runtime().index_cache
    held = cache.held(os.environ["BENCH_WATCHLIST"]) if hasattr(cache, "held") else None
    print(json.dumps({"start_s": t0, "import_s": t1 - t0, "invoke_s": t2 - t1, "total_s": t2,
                      "result": result,
                      "source": held.source if held else None,
                      "subjects": len(held.index) if held else 0,
                      "onnx_imported": "onnx" in sys.modules}))


def snapshot_only(n: int) -> int:
    """CPU-s to pack a snapshot of n subjects and to check and read it back (what a worker
    does after its GetObject), and the peak RSS; ids and names shaped like the service's."""
    from chalicelib.matching.index import ExactIndex
    from chalicelib.matching.snapshot import Expected, Snapshot, digest, pack, unpack

    rng = np.random.default_rng(0)
    t = rng.standard_normal((n, 128)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    ids = [f"s-{i:012x}" for i in range(n)]
    names = [f"Firstname Lastname {i}" for i in range(n)]
    c0 = time.process_time()
    data = pack(Snapshot("wl-1", 1, "m", ids, names, t))
    c1 = time.process_time()
    snap = unpack(data, Expected("wl-1", 1, "m", digest(data)))
    c2 = time.process_time()
    ExactIndex(snap.subject_ids, snap.templates, "m")
    c3 = time.process_time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} subjects: snapshot {len(data) / 1e6:.1f} MB; pack {c1 - c0:.2f} CPU-s; "
          f"check + read {c2 - c1:.2f} CPU-s (sha256 {len(data) / 1e6:.0f} MB included); "
          f"index {c3 - c2:.2f} CPU-s; peak RSS {rss:.0f} MiB")
    return 0


def _model_env(tmp: Path) -> dict[str, dict[str, str]]:
    """Environment per model configuration: the wheels' files, or the layer's prepared ones
    (written here by the code that builds the layer)."""
    from chalicelib.vision.models import layer_model_env
    from layers.build_layer import add_models

    add_models(tmp)
    layer = {k: v.replace("/opt/models", str(tmp)) for k, v in layer_model_env().items()}
    return {"wheels": {}, "prepared": layer}


def _synthetic_subjects(rt: Any, watchlist_id: str, model_id: str, n: int) -> None:
    rng = np.random.default_rng(0)
    S = rt.tables.Subject
    with S.batch_write() as batch:
        for i in range(n):
            v = rng.standard_normal(128).astype(np.float32)
            batch.save(S(watchlist_id=watchlist_id, subject_id=f"s-syn-{i:07d}",
                         display_name=f"Synthetic {i}", model_id=model_id,
                         embedding=v / np.linalg.norm(v), source="benchmark",
                         reason="benchmark"))


def _watchlist(rt: Any, n: int, snapshot: bool, cameras: int) -> tuple[str, str, float]:
    """A list of n subjects bound to a deployment with cameras; (watchlist, deployment, CPU-s
    of authorising it in this process)."""
    from chalicelib.ops.deployments import create_deployment
    from chalicelib.ops.watchlists import authorise_watchlist, create_watchlist, enroll_subject

    s, pipe = rt.settings, rt.pipeline
    wl = create_watchlist(rt.tables, f"cold {n}", pipe.model_id, created_by="operator-1")
    image = PERSON / "1.jpg"
    enroll_subject(rt.tables, rt.client("s3"), s.evidence_bucket, pipe, wl, "Cory Gardner",
                   [(image.name, image.read_bytes())], source="demo", reason="benchmark")
    _synthetic_subjects(rt, wl, pipe.model_id, n - 1)
    W = rt.tables.Watchlist
    W.get(wl).update(actions=[W.version.add(1)])
    t = time.process_time()
    authorise_watchlist(rt.tables, rt.client("s3"), s.evidence_bucket, wl, "operator-2")
    auth_s = time.process_time() - t
    if not snapshot:  # the refusal path: the worker reads the subject rows
        from chalicelib.ops import snapshots

        W.get(wl).update(actions=snapshots.clear_actions(W))
    cams = [f"cam-{i}" for i in range(cameras)]  # one per run: no run continues another's
    dep = create_deployment(rt.tables, f"cold {n}", wl, cams, 0.5,
                            deployment_id=f"dep-cold-{uuid.uuid4().hex[:6]}")
    return wl, dep, auth_s


def _event(rt: Any, deployment_id: str, camera_id: str) -> dict[str, Any]:
    """Upload one batch (the watchlisted face) and take its S3 notification off the queue."""
    from chalicelib.ingest.batch_format import pack_batch
    from chalicelib.local.pump import sqs_event
    from chalicelib.store import layout

    s, sqs = rt.settings, rt.client("sqs")
    body = pack_batch(deployment_id, camera_id, 0, [(datetime.now(UTC),
                                                     (PERSON / "2.jpg").read_bytes())])
    key = layout.batch_key(deployment_id, camera_id, 0)
    rt.client("s3").put_object(Bucket=s.frames_bucket, Key=key, Body=body)
    url = rt.queue_url(s.frames_queue)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    for _ in range(50):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                  AttributeNames=["All"])
        for m in got.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if quote(key, safe="") in m["Body"]:  # not S3's test event, not another batch
                return sqs_event([m], arn, s.region)
    raise RuntimeError("the batch's S3 notification never reached the frames queue")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subjects", type=int, default=17_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--baseline", metavar="REV",
                   help="also run the worker of git revision REV (a temporary worktree) on the "
                        "list without a snapshot, with the wheels' models")
    p.add_argument("--snapshot-only", type=int, metavar="N",
                   help="only time packing and checking a snapshot of N subjects, in memory")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.snapshot_only:
        return snapshot_only(args.snapshot_only)
    if args.child:
        if os.environ.get("BENCH_PROFILE"):  # where the cold start goes: a cProfile dump
            import cProfile

            cProfile.runctx("child()", globals(), locals(), os.environ["BENCH_PROFILE"])
        else:
            child()
        return 0

    configs = dict(CONFIGS)
    trees = {name: ROOT for name in configs}
    base_tree = None
    if args.baseline:
        base_tree = Path(tempfile.mkdtemp(prefix="lfr-cold-base-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.baseline],
                       cwd=ROOT, check=True, capture_output=True)
        configs = {f"before ({args.baseline})": {"models": "wheels", "watchlist": "table"},
                   **configs}
        trees[f"before ({args.baseline})"] = base_tree
    try:
        return _run(args, configs, trees)
    finally:
        if base_tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT,
                           check=False, capture_output=True)


def _run(args: argparse.Namespace, configs: dict[str, dict[str, str]],
         trees: dict[str, Path]) -> int:
    from chalicelib.local.session import local_session

    with tempfile.TemporaryDirectory() as tmp, local_session(f"cold{os.getpid()}") as ls:
        rt = ls.rt
        models = _model_env(Path(tmp))
        t = time.perf_counter()
        n_cams = args.runs * len(configs)
        lists = {True: _watchlist(rt, args.subjects, snapshot=True, cameras=n_cams),
                 False: _watchlist(rt, args.subjects, snapshot=False, cameras=n_cams)}
        print(f"{args.subjects} subjects x 2 lists written and authorised in "
              f"{time.perf_counter() - t:.0f} s; authorising (packing the snapshot) took "
              f"{lists[True][2]:.2f} CPU-s in this process")
        wl_row = rt.tables.Watchlist.get(lists[True][0])
        size = rt.client("s3").head_object(Bucket=rt.settings.evidence_bucket,
                                           Key=wl_row.snapshot_key)["ContentLength"]
        print(f"snapshot {wl_row.snapshot_key}: {size / 1e6:.1f} MB")
        camera = iter(range(n_cams))
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        for _ in range(args.runs):
            for name, config in configs.items():  # interleaved: load drifts hit all alike
                wl, dep, _ = lists[config["watchlist"] == "snapshot"]
                event = _event(rt, dep, f"cam-{next(camera)}")
                env = {**os.environ, **models[config["models"]], "BENCH_WATCHLIST": wl,
                       "PYTHONPATH": str(trees[name]),
                       **({"PYTHONPYCACHEPREFIX": tempfile.mkdtemp(prefix="lfr-nopyc-"),
                           "PYTHONDONTWRITEBYTECODE": "1"} if config.get("pyc") == "none"
                          else {}),
                       "POWERTOOLS_METRICS_DISABLED": "true",
                       "POWERTOOLS_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR")}
                out = subprocess.run([sys.executable, __file__, "--child"], env=env,
                                     cwd=trees[name],
                                     input=json.dumps(event), capture_output=True, text=True,
                                     timeout=600)
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                if os.environ.get("BENCH_LOG_LEVEL"):  # e.g. INFO: the worker's own log lines
                    print(out.stdout[-3000:], out.stderr[-3000:])
                got = json.loads(out.stdout.strip().splitlines()[-1])
                rows[name].append(got)

    print(f"\ncold start to first decision, {args.subjects} subjects, CPU-s of the whole "
          f"process (median of {args.runs}; min-max)")
    print(f"{'configuration':<18} {'total':>7} {'range':>13} {'import':>7} {'1st batch':>9} "
          f"{'loaded from':>11} {'onnx':>5}  vs before")
    base = statistics.median(r["total_s"] for r in next(iter(rows.values())))
    for name, runs in rows.items():
        totals = [r["total_s"] for r in runs]
        med = statistics.median(totals)
        imp = statistics.median(r["import_s"] for r in runs)
        inv = statistics.median(r["invoke_s"] for r in runs)
        fail = sum(bool(r["result"].get("batchItemFailures")) for r in runs)
        print(f"{name:<18} {med:7.2f} {min(totals):6.2f}-{max(totals):<6.2f} {imp:7.2f} "
              f"{inv:9.2f} {runs[0]['source'] or 'table':>11} "
              f"{str(runs[0]['onnx_imported']):>5}  "
              f"{base / med:5.2f}x{'  FAILED BATCHES: ' + str(fail) if fail else ''}")
    print("(total: from the process's start to its first decision, interpreter and numpy "
          "included; import: the app module; 1st batch: clients, models, watchlist, decision)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
