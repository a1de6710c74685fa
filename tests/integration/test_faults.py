"""Fault injection on the stream path, against moto server (issue 11).

For every step of one frame batch's way to the officers' phones (tests/faults/steps.py: S3 get,
decode, detect, each DynamoDB write, the SQS send, each SNS publish, the S3 delete), before the
step and, for writes, after it landed: an ordinary failure, a crash in-process, and a real
SIGKILL of the process running the function. The functions run in a process of their own
(tests/faults/invoker.py); this test plays SQS's part: it hands each message to the function,
deletes it on success and delivers it again on failure, after the function's timeout, as the
queue's visibility timeout (longer than the function's timeout) would on AWS.

Each case counts alerts, pushes to each of two phones, topic messages, the batch's counters,
the audit entry, what is left in S3 and what was dead-lettered, against what one batch of two
frames of one wanted person should give.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chalicelib.auth import issue_local_token
from chalicelib.ingest.batch_format import pack_batch
from chalicelib.local.inspect import all_keys
from chalicelib.local.pump import queue_backlog, sqs_event
from chalicelib.local.resources import dlq_name
from chalicelib.matching.snapshot import Expected, unpack
from chalicelib.ops import audit
from chalicelib.ops.watchlist_index import IndexCache, load_index
from chalicelib.ops.watchlists import authorise_watchlist, create_watchlist, remove_subject
from chalicelib.store import layout
from tests.faults.steps import (
    DLQ_STEPS,
    REFUSED_STEPS,
    REMOVAL_STEPS,
    WARM_STEPS,
    cases,
    in_window,
)
from tests.integration.conftest import demo_person, jpeg

REPO = Path(__file__).resolve().parents[2]
MARK = "@@lfr-invoker@@ "
# The functions' timeout in the invoker, and so the queues' redelivery after a failure: short, so
# that the 96 cases wait little, and the push lease with it (a lease outlives no retry).
TIMEOUT_MS = 250
# Each case's counts travel on its report (user_properties, as xdist sends them to the
# controller), and tests/conftest.py sums them at the end of the run: the cases can be spread
# over the workers in groups (tests/conftest.py FAULT_GROUPS), each group keeping its invoker.
FAULT_KEY = "lfr-fault"
pytestmark = pytest.mark.random_order(disabled=True)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Any:
    def add(kind: str, result: dict[str, Any]) -> None:
        request.node.user_properties.append((FAULT_KEY, json.dumps({"kind": kind, **result})))

    return add


class Invoker:
    """The function processes: forks of a zygote that loaded the app and the models once
    (tests/faults/invoker.py), so a case that kills one goes on at once with the next."""

    def __init__(self, env: dict[str, str], socket_path: Path) -> None:
        self.kills, self.path = 0, str(socket_path)
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.invoker", self.path],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        assert _answer(self.zygote.stdout) == {"ready": True}, "the zygote did not start"
        self.conn, self.pid = self._connect()

    def _connect(self) -> tuple[Any, int]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        rfile, wfile = sock.makefile("r"), sock.makefile("w")
        ready = _answer(rfile)
        assert ready and ready["ready"], "the function process did not start"
        return (sock, rfile, wfile), ready["pid"]

    def invoke(self, function: str, event: dict[str, Any],
               fault: dict[str, str] | None) -> dict[str, Any]:
        _, rfile, wfile = self.conn
        wfile.write(json.dumps({"function": function, "event": event, "fault": fault}) + "\n")
        wfile.flush()
        answer = _answer(rfile)
        if answer is None:  # killed mid-step: the zygote says how it ended
            self._close_conn()
            assert self._ended(self.pid) == -9, "the function process was not killed"
            self.kills += 1
            self.conn, self.pid = self._connect()
            return {"killed": True, "fired": True}
        return answer

    def _ended(self, pid: int) -> int:
        assert self.zygote.stdin is not None
        self.zygote.stdin.write(json.dumps({"wait": pid}) + "\n")
        self.zygote.stdin.flush()
        answer = _answer(self.zygote.stdout)
        assert answer and answer["exited"] == pid
        return int(answer["returncode"])

    def _close_conn(self) -> None:
        for part in reversed(self.conn):
            part.close()

    def close(self) -> None:
        self._close_conn()
        assert self._ended(self.pid) == 0
        assert self.zygote.stdin is not None
        self.zygote.stdin.close()
        self.zygote.wait(timeout=30)


def _answer(stream: Any) -> dict[str, Any] | None:
    """The next answer on a process's stream; None when it ended without one."""
    for line in stream:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return None


@pytest.fixture(scope="module")
def invoker(local_stack: dict[str, Any], prepared_recognizer: dict[str, str]) -> Any:
    env = {**os.environ, **prepared_recognizer, "LFR_PUSH_LEASE_S": str(TIMEOUT_MS / 1000),
           "LFR_FAULT_TIMEOUT_MS": str(TIMEOUT_MS), "LFR_FAULT_MARK": MARK,
           "PYTHONPATH": str(REPO)}
    # AF_UNIX paths are short (108 bytes): a folder of its own under /tmp, not pytest's tmp_path.
    with tempfile.TemporaryDirectory(prefix="lfr-invoker-") as folder:
        inv = Invoker(env, Path(folder) / "zygote.sock")
        yield inv
        inv.close()


@pytest.fixture(scope="module")
def topic_tap(rt: Any) -> str:
    """A queue subscribed to the deployment topic: what its subscribers receive."""
    sqs, sns = rt.client("sqs"), rt.client("sns")
    url = sqs.create_queue(QueueName=f"{rt.settings.prefix}-fault-topic-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=rt.topic_arn, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return url


def _drain(sqs: Any, url: str) -> list[str]:
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return bodies
        for m in msgs:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _run_queues(rt: Any, invoker: Invoker,
                fault: dict[str, str] | None) -> tuple[bool, int]:
    """Plays SQS and the event source mappings until both queues stay empty.
    Returns (did the fault strike, invocations)."""
    sqs, s = rt.client("sqs"), rt.settings
    queues = []
    for name, function in ((s.frames_queue, "frames_worker"), (s.alerts_queue, "alerts_notifier")):
        url = rt.queue_url(name)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        queues.append((url, arn, function))
    fired, calls = False, 0
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "the queues did not drain"
        busy = False
        for url, arn, function in queues:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       AttributeNames=["All"]).get("Messages", [])
            if not msgs:
                continue
            busy = True
            calls += 1
            out = invoker.invoke(function, sqs_event(msgs, arn, s.region),
                                 None if fired else fault)
            fired = fired or out["fired"]
            if "response" in out:
                failed = {f["itemIdentifier"] for f in out["response"]["batchItemFailures"]}
            else:  # crashed, killed or failed as a whole: the whole batch comes back
                failed = {m["MessageId"] for m in msgs}
            if failed:
                # Redelivered after the function's timeout: by then an in-progress claim or a
                # push lease taken in that invocation has lapsed, as on AWS.
                time.sleep(TIMEOUT_MS / 1000)
            for m in msgs:
                if m["MessageId"] in failed:
                    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                                  VisibilityTimeout=0)
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        # Done when no queue holds anything: this harness leaves nothing in flight between
        # rounds, so one empty round, confirmed by the queues' counts, is the end.
        if not busy and not sum(queue_backlog(sqs, url) for url, _, _ in queues):
            break
    return fired, calls


@pytest.mark.slow
@pytest.mark.parametrize(("step", "when", "kind"), cases(),
                         ids=[f"{s}-{w}-{k}".replace(" ", "_") for s, w, k in cases()])
def test_fault(scenario_factory, invoker, topic_tap, record, step: str, when: str,
               kind: str) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    frame = jpeg(demo_person("Cory_Gardner", 2))
    sc.upload(0, [frame, frame], at=datetime.now(UTC))  # one passing, two frames
    fired, calls = _run_queues(rt, invoker, {"step": step, "when": when, "kind": kind})
    assert fired, f"the fault never struck: {step} is not on the path as described"

    o = _outcome(sc, topic_tap)
    raised = [e for e in audit.entries(rt.tables, sc.deployment_id)
              if e["action"] == "alert.raised"]
    record("stream", {"case": f"{step} / {when} / {kind}", "alerts": len(o.alerts),
                      "lost_pushes": o.lost_pushes, "dup_pushes": o.dup_pushes,
                      "window": in_window(step, when), "calls": calls})

    assert [a.subject_id for a in o.alerts] == [sc.subjects["Cory Gardner"]]
    assert o.lost_pushes == 0, (dict(o.per_phone), len(o.topic))
    allowed = 1 if in_window(step, when) else 0
    assert o.dup_pushes <= allowed, (dict(o.per_phone), len(o.topic))
    assert len(raised) == 1
    assert (o.dep.batches, o.dep.frames, o.dep.passings) == (1, 2, 1)
    assert o.alerts[0].notified_at is not None
    assert not o.left, "the batch's frames were left in S3"
    assert not o.dead


@dataclass
class Outcome:
    """What one case left: alerts, pushes per phone, topic messages, dead letters, the
    deployment's counters and the frames still in S3."""

    alerts: list[Any]
    per_phone: Counter[str]
    topic: list[str]
    dead: list[str]
    dep: Any
    left: list[str]

    @property
    def lost_pushes(self) -> int:
        return sum(1 for n in self.per_phone.values() if n == 0) + (not self.topic)

    @property
    def dup_pushes(self) -> int:
        return (sum(max(0, n - 1) for n in self.per_phone.values())
                + max(0, len(self.topic) - 1))


def _outcome(sc: Any, topic_tap: str) -> Outcome:
    rt = sc.rt
    sqs = rt.client("sqs")
    alerts = sc.alerts()
    pushed = Counter(p.endpoint_arn for p in sc.pushes())
    per_phone = Counter({d: pushed[d] for d in sc.devices})  # a phone with none counts 0
    topic = [b for b in _drain(sqs, topic_tap) if sc.deployment_id in b]
    dead = [b for q in (rt.settings.frames_queue, rt.settings.alerts_queue)
            for b in _drain(sqs, rt.queue_url(dlq_name(q)))
            if sc.deployment_id in b or any(a.alert_id in b for a in alerts)]
    left = [k for k in all_keys(rt.client("s3"), rt.settings.frames_bucket)
            if sc.deployment_id in k]
    return Outcome(alerts, per_phone, topic, dead, rt.tables.Deployment.get(sc.deployment_id),
                   left)


@pytest.mark.slow
@pytest.mark.parametrize(("step", "when", "kind"), cases(WARM_STEPS),
                         ids=[f"warm-{s}-{w}-{k}".replace(" ", "_")
                              for s, w, k in cases(WARM_STEPS)])
def test_fault_warm(scenario_factory, invoker, topic_tap, record, step: str, when: str,
                    kind: str) -> None:
    """Issue 22 item 9: the steps only a camera's later batch takes, in a container that has
    seen the deployment: its first batch raises the alert unharmed; the next, the same passing
    still in view for 15 s more (its sighting extended), is struck."""
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    frame = jpeg(demo_person("Cory_Gardner", 2))
    t0 = datetime.now(UTC)
    sc.upload(0, [frame, frame], at=t0)
    _run_queues(rt, invoker, None)  # unharmed
    # Frames 1.2 s apart (the tracker bridges 1.3 s): one passing, past 15 s of capture time.
    later = [frame] * 13
    sc.upload(1, later, at=t0 + timedelta(seconds=1.4), interval_s=1.2)
    fired, calls = _run_queues(rt, invoker, {"step": step, "when": when, "kind": kind})
    assert fired, f"the fault never struck: {step} is not on the path as described"

    o = _outcome(sc, topic_tap)
    record("stream", {"case": f"warm {step} / {when} / {kind}", "alerts": len(o.alerts),
                      "lost_pushes": o.lost_pushes, "dup_pushes": o.dup_pushes,
                      "window": False, "calls": calls})
    assert [a.subject_id for a in o.alerts] == [sc.subjects["Cory Gardner"]]
    assert sorted(o.per_phone.values()) == [1, 1] and len(o.topic) == 1
    assert (o.dep.batches, o.dep.frames, o.dep.passings) == (2, 15, 1)
    sighting = rt.tables.Sighting.get(f"{sc.deployment_id}#{sc.camera_id}",
                                      sc.subjects["Cory Gardner"])
    [passing] = json.loads(sighting.passings)
    assert passing["last"] >= (t0 + timedelta(seconds=15)).timestamp()  # extended, once
    assert not o.left and not o.dead


@pytest.mark.slow
@pytest.mark.parametrize(("step", "when", "kind"), cases(REFUSED_STEPS),
                         ids=[f"refused-{s}-{w}-{k}".replace(" ", "_")
                              for s, w, k in cases(REFUSED_STEPS)])
def test_fault_refused_snapshot(scenario_factory, invoker, topic_tap, record, step: str,
                                when: str, kind: str) -> None:
    """Issue 22 item 9: a warm container reloads a changed list whose snapshot it must refuse,
    and the subject rows' Query that replaces it is struck. The camera's first batch raises
    Cory's alert unharmed; Cory is then taken off the list, and the snapshot it was re-packed
    into is corrupt (refused: digest). The camera's next batch, Cory passing again and then
    Anna: Cory is not searched for (his sighting stays as it was, no alert), Anna is (her
    alert, from the rows): neither the old index nor an empty one may stand in for the rows."""
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)],
                           "Anna Eshoo": [demo_person("Anna_Eshoo", 1)]})
    rt, s3, bucket = sc.rt, sc.rt.client("s3"), sc.rt.settings.evidence_bucket
    cory, anna = sc.subjects["Cory Gardner"], sc.subjects["Anna Eshoo"]
    seen_cory, seen_anna = jpeg(demo_person("Cory_Gardner", 2)), jpeg(demo_person("Anna_Eshoo", 2))
    t0 = datetime.now(UTC)
    sc.upload(0, [seen_cory, seen_cory], at=t0)
    _run_queues(rt, invoker, None)  # unharmed: the container holds the list's index
    remove_subject(rt.tables, s3, bucket, sc.watchlist_id, cory, "operator-1")
    row = rt.tables.Watchlist.get(sc.watchlist_id, consistent_read=True)
    s3.put_object(Bucket=bucket, Key=row.snapshot_key, Body=b"not the authorised templates")
    # Two passings, each too far from the one before to be its track (1.3 s).
    frames = [(t0 + timedelta(seconds=t), f) for t, f in
              ((5.0, seen_cory), (5.2, seen_cory), (8.0, seen_anna), (8.2, seen_anna))]
    rt.client("s3").put_object(
        Bucket=rt.settings.frames_bucket, Key=layout.batch_key(sc.deployment_id, sc.camera_id, 1),
        Body=pack_batch(sc.deployment_id, sc.camera_id, 1, frames))
    fired, calls = _run_queues(rt, invoker, {"step": step, "when": when, "kind": kind})
    assert fired, f"the fault never struck: {step} is not on the path as described"

    o = _outcome(sc, topic_tap)
    # Counted as the other cases are: the struck batch's alert (Anna's) and its pushes.
    after = [a for a in o.alerts if a.subject_id != cory]
    pushes = [*o.per_phone.values(), len(o.topic)]
    record("stream", {"case": f"refused {step} / {when} / {kind}", "alerts": len(after),
                      "lost_pushes": sum(1 for n in pushes if n < 2),
                      "dup_pushes": sum(max(0, n - 2) for n in pushes),
                      "window": False, "calls": calls})
    assert sorted(a.subject_id for a in o.alerts) == sorted([cory, anna])
    assert sorted(o.per_phone.values()) == [2] and len(o.topic) == 2
    assert (o.dep.batches, o.dep.frames, o.dep.passings) == (2, 6, 3)
    sighting = rt.tables.Sighting.get(f"{sc.deployment_id}#{sc.camera_id}", cory)
    [passing] = json.loads(sighting.passings)
    assert passing["last"] < (t0 + timedelta(seconds=1)).timestamp(), "Cory was searched for"
    assert not o.left and not o.dead


@pytest.mark.slow
@pytest.mark.parametrize(("step", "when", "kind"), cases(DLQ_STEPS),
                         ids=[f"{s}-{w}-{k}".replace(" ", "_") for s, w, k in cases(DLQ_STEPS)])
def test_fault_dead_letter(scenario_factory, invoker, step: str, when: str, kind: str) -> None:
    """Issue 22 item 9: a batch that fails every try (a malformed manifest), its dead-lettering
    struck. It still reaches the DLQ, with a reason, its frames deleted, nothing counted; a send
    that landed but whose answer was lost is sent again on the next delivery (NoAnswer): two
    dead letters of one batch, which a redrive processes once."""
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    key = sc.put_malformed(jpeg(demo_person("Cory_Gardner", 2)))
    fired, calls = _run_queues(rt, invoker, {"step": step, "when": when, "kind": kind})
    assert fired, f"the fault never struck: {step} is not on the path as described"

    sqs = rt.client("sqs")
    url = rt.queue_url(dlq_name(rt.settings.frames_queue))
    dead = []
    for _ in range(10):  # every message, whatever else lies there
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        dead += [m for m in got if sc.deployment_id in m["Body"]]
        if not got:
            break
    reasons = [m.get("MessageAttributes", {}).get("lfr.error", {}).get("StringValue")
               for m in dead]
    # A send that landed, its answer lost (failed, crashed or killed after it): sent again.
    assert len(dead) == (2 if when == "after" else 1), reasons
    assert all(reasons), reasons  # each says why, none moved bare by SQS
    assert key not in all_keys(rt.client("s3"), rt.settings.frames_bucket)
    assert sc.alerts() == [] and rt.tables.Deployment.get(sc.deployment_id).batches == 0


def _authorised_list(rt: Any) -> tuple[str, str, str]:
    """An authorised list of two subjects (random templates: no model needed), with their
    reference images and its snapshot: (watchlist, the subject to remove, the other)."""
    s3, bucket, T = rt.client("s3"), rt.settings.evidence_bucket, rt.tables
    wl = create_watchlist(T, "removal", "model-x", created_by="operator-1")
    rng = np.random.default_rng(int(uuid.uuid4().int % 2**32))
    ids = sorted(f"s-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for sid in ids:
        key = layout.reference_key(wl, sid)
        s3.put_object(Bucket=bucket, Key=key, Body=b"reference image")
        T.Subject(watchlist_id=wl, subject_id=sid, display_name=sid, model_id="model-x",
                  embedding=rng.standard_normal(128).astype(np.float32),
                  reference_key=key).save()
    authorise_watchlist(T, s3, bucket, wl, "operator-2")
    return wl, ids[0], ids[1]


def _held_ids(rt: Any, cache: IndexCache, wl: str) -> list[str]:
    """What a warm worker that holds `cache` searches for its next batch."""
    return cache.get(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wl).index.subject_ids


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _row_there(rt: Any, wl: str, sid: str) -> bool:
    try:
        rt.tables.Subject.get(wl, sid, consistent_read=True)
    except rt.tables.Subject.DoesNotExist:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("step", "when", "kind"), cases(REMOVAL_STEPS),
                         ids=[f"{s}-{w}-{k}".replace(" ", "_")
                              for s, w, k in cases(REMOVAL_STEPS)])
def test_removal_fault(rt, local_stack, invoker, record, step: str, when: str,
                       kind: str) -> None:
    """A subject's removal struck at every step: whatever the failure, the person is searched
    for by a warm or a cold worker exactly while their row is on the list, and the operator's
    retry of the DELETE finishes the removal (200), leaving no template, image or snapshot."""
    s3, bucket, T = rt.client("s3"), rt.settings.evidence_bucket, rt.tables
    wl, gone, kept = _authorised_list(rt)
    warm = IndexCache()
    assert _held_ids(rt, warm, wl) == [gone, kept]
    token = issue_local_token(local_stack["settings"].local_auth_secret, "operator-1",
                              ["operator"])
    request = {"method": "DELETE", "path": f"/watchlists/{wl}/subjects/{gone}",
               "headers": {"Authorization": f"Bearer {token}"}}
    out = invoker.invoke("api", request, {"step": step, "when": when, "kind": kind})
    assert out["fired"], f"the fault never struck: {step} is not on the path as described"

    there = _row_there(rt, wl, gone)
    warm_ids = _held_ids(rt, warm, wl)
    cold_ids = load_index(T, s3, bucket, T.Watchlist.get(wl, consistent_read=True)
                          ).index.subject_ids
    statuses = []
    for _ in range(3):  # the operator retries until told it is done
        answer = invoker.invoke("api", request, None).get("response", {})
        statuses.append(answer.get("status"))
        if answer.get("status") != 500:
            break
    record("removal", {"case": f"{step} / {when} / {kind}",
                       "matchable_when_removed": not there and gone in warm_ids + cold_ids,
                       "retry": statuses[-1]})
    assert (gone in warm_ids, gone in cold_ids) == (there, there), (there, warm_ids, cold_ids)
    assert statuses[-1] == 200, statuses

    row = T.Watchlist.get(wl, consistent_read=True)
    assert not _row_there(rt, wl, gone)
    assert _held_ids(rt, warm, wl) == [kept]
    refs = _keys(s3, bucket, layout.reference_prefix(wl))
    assert refs == [layout.reference_key(wl, kept)], "the reference image was left"
    snaps = _keys(s3, bucket, layout.snapshot_prefix(wl))
    assert snaps == [row.snapshot_key], "a superseded snapshot (their template) was left"
    assert row.snapshot_version == row.version
    body = s3.get_object(Bucket=bucket, Key=row.snapshot_key)["Body"].read()
    assert unpack(body, Expected(wl, int(row.version), "model-x", row.snapshot_sha256)
                  ).subject_ids == [kept]
    removed = [e for e in audit.entries(T, audit.watchlist_scope(wl))
               if e["action"] == "subject.removed"]
    assert [e["target"] for e in removed] == [gone]
