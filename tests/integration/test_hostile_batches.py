"""Hostile frames and batches through the real worker, against moto server (issue 11).

Every kind of bad frame is sent beside a good frame of a wanted person: the bad one is skipped
and counted under its reason, and the good one still alerts. Every kind of bad batch is
rejected with a reason that says what is wrong, logged, and on the last try its object is
deleted (frames of passers-by do not wait a day for the lifecycle rule) and the message goes to
the dead-letter queue. No kind crashes the worker.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import cv2
import numpy as np
import pytest

from chalicelib.ingest.batch_format import FORMAT, MANIFEST
from chalicelib.ingest.worker import FramesHandler
from chalicelib.local.inspect import all_keys
from chalicelib.local.pump import LambdaContext, sqs_event
from chalicelib.store import layout
from tests.conftest import flag_encrypted, progressive_jpeg
from tests.integration.conftest import demo_person, jpeg, log_records


def _zip(manifest: bytes | dict[str, Any] | None, members: dict[str, bytes],
         compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        if manifest is not None:
            raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            zf.writestr(MANIFEST, raw)
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _manifest(dep: str, cam: str, names: list[str], at: datetime | None = None,
              **over: Any) -> dict[str, Any]:
    t = at or datetime.now(UTC)
    doc = {"format": FORMAT, "deployment_id": dep, "camera_id": cam, "sequence": 0,
           "frames": [{"name": n, "captured_at": (t + timedelta(milliseconds=200 * i)).isoformat()}
                      for i, n in enumerate(names)]}
    doc.update(over)
    return doc


def _image(w: int, h: int, ext: str = ".jpg", flat: bool = False) -> bytes:
    img = np.full((h, w, 3), 127, np.uint8) if flat else \
        np.random.default_rng(w * h).integers(0, 255, (h, w, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _noise(n: int) -> bytes:
    return bytes(np.random.default_rng(n).integers(0, 255, n, np.uint8))


def _sof_size(data: bytes, w: int, h: int) -> bytes:
    """The JPEG with its frame header claiming w x h."""
    out = bytearray(data)
    at = next(i for i in range(2, len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC2))
    out[at + 5 : at + 7] = h.to_bytes(2, "big")
    out[at + 7 : at + 9] = w.to_bytes(2, "big")
    return bytes(out)


# --- Bad frames: (kind, bad frame bytes or a batch builder, the reason it is counted under) --
GOOD = "000001.jpg"
BAD = "000000.jpg"


def _frame_kinds() -> list[tuple[str, Callable[[bytes], bytes | None], str]]:
    def corrupt(good: bytes) -> bytes:
        return good[:200] + _noise(3000) + good[-2:]

    return [
        ("corrupt entropy data", corrupt, "corrupt"),
        ("truncated JPEG", lambda g: g[: len(g) // 2], "truncated"),
        ("zero bytes", lambda g: b"", "empty"),
        ("text, not an image", lambda g: b"this is not an image", "not_jpeg"),
        ("PNG named .jpg", lambda g: _image(64, 64, ".png"), "not_jpeg"),
        ("BMP named .jpg", lambda g: _image(64, 64, ".bmp"), "not_jpeg"),
        ("more pixels than allowed", lambda g: _image(4000, 2200, flat=True), "too_large"),
        ("header claims 65535x65535", lambda g: _sof_size(_image(64, 64), 65535, 65535),
         "too_large"),
        ("header claims a zero width", lambda g: _sof_size(_image(64, 64), 0, 64), "corrupt"),
        ("SOI and EOI only", lambda g: b"\xff\xd8\xff\xd9", "corrupt"),
        ("random bytes between SOI and EOI", lambda g: b"\xff\xd8\xff" + _noise(5000) + b"\xff\xd9",
         "truncated"),  # no frame header before the data ends
        ("progressive JPEG repeating one scan 1,500 times",
         lambda g: progressive_jpeg(1920, 1080, repeats=1500), "too_many_scans"),
        ("4K progressive JPEG with 20 scans", lambda g: progressive_jpeg(3840, 2160, repeats=10),
         "too_many_scans"),
        ("named in the manifest, absent from the archive", lambda g: None, "missing"),
    ]


FRAME_KINDS = _frame_kinds()


@pytest.mark.parametrize(("kind", "bad", "reason"), FRAME_KINDS,
                         ids=[k for k, _, _ in FRAME_KINDS])
def test_a_bad_frame_loses_only_itself(scenario_factory, local_stack, caplog, kind: str,
                                       bad: Callable[[bytes], bytes | None], reason: str) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    good = jpeg(demo_person("Cory_Gardner", 2))
    frame = bad(good)
    members = {GOOD: good} if frame is None else {BAD: frame, GOOD: good}
    body = _zip(_manifest(sc.deployment_id, sc.camera_id, [BAD, GOOD]), members)
    _put_and_drain(sc, local_stack, caplog, body)
    _expect_only_the_bad_frame_skipped(sc, caplog, reason)


# Archive-level frame problems (the member, not its bytes).
def _member_kinds(sc: Any, good: bytes) -> list[tuple[str, bytes, str]]:
    names = [BAD, GOOD]
    plain = _zip(_manifest(sc.deployment_id, sc.camera_id, names), {BAD: good, GOOD: good})
    deflated = bytearray(_zip(_manifest(sc.deployment_id, sc.camera_id, names),
                              {BAD: b"\x00" * 50000, GOOD: good}, zipfile.ZIP_DEFLATED))
    at = deflated.index(b"PK\x03\x04", deflated.index(BAD.encode()) - 30) + 30 + len(BAD)
    deflated[at + 10 : at + 30] = b"\xff" * 20  # the deflate stream, broken
    old = datetime(2001, 1, 1, tzinfo=UTC)
    outside = _manifest(sc.deployment_id, sc.camera_id, names)
    outside["frames"][0]["captured_at"] = old.isoformat()
    return [
        ("frame member flagged encrypted", flag_encrypted(plain, BAD), "unreadable"),
        ("frame member's deflate data broken", bytes(deflated), "unreadable"),
        ("frame over the byte limit", _zip(_manifest(sc.deployment_id, sc.camera_id, names),
                                           {BAD: good + b"\x00" * (4 * 1024 * 1024), GOOD: good}),
         "too_many_bytes"),
        ("frame captured outside the authorised window",
         _zip(outside, {BAD: good, GOOD: good}), "outside_window"),
    ]


@pytest.mark.parametrize("n", range(4))
def test_a_bad_frame_member_loses_only_itself(scenario_factory, local_stack, caplog,
                                              n: int) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    kind, body, reason = _member_kinds(sc, jpeg(demo_person("Cory_Gardner", 2)))[n]
    _put_and_drain(sc, local_stack, caplog, body)
    _expect_only_the_bad_frame_skipped(sc, caplog, reason)


def _put_and_drain(sc: Any, local_stack: dict[str, Any], caplog: Any, body: bytes) -> None:
    caplog.clear()
    key = layout.batch_key(sc.deployment_id, sc.camera_id, 0)
    sc.rt.client("s3").put_object(Bucket=sc.rt.settings.frames_bucket, Key=key, Body=body)
    local_stack["pump"].drain(timeout=120)


def _expect_only_the_bad_frame_skipped(sc: Any, caplog: Any, reason: str) -> None:
    lines = [x for x in log_records(caplog, "batch processed") if sc.deployment_id in x["key"]]
    assert len(lines) == 1, "the batch was not processed once"
    assert lines[0]["frames_skipped"] == {reason: 1}
    assert lines[0]["frames_processed"] == 1
    assert [a.display_name for a in sc.alerts()] == ["Cory Gardner"]
    dep = sc.rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.frames, dep.frames_skipped) == (1, 1)


# --- Bad batches: rejected as a whole, with the reason -----------------------------------------
def _batch_kinds(sc: Any, good: bytes) -> list[tuple[str, str, bytes, str]]:
    """(kind, object key, body, what the reason says)."""
    dep, cam = sc.deployment_id, sc.camera_id
    key = layout.batch_key(dep, cam, 0)
    names = [BAD]
    ok = _manifest(dep, cam, names)

    def m(**over: Any) -> bytes:
        return _zip({**ok, **over}, {BAD: good})

    plain = _zip(ok, {BAD: good})
    utf8 = bytearray(plain)
    cd = utf8.index(b"PK\x01\x02")
    utf8[cd + 8 : cd + 10] = (int.from_bytes(utf8[cd + 8 : cd + 10], "little")
                              | 0x800).to_bytes(2, "little")
    utf8[cd + 46 : cd + 48] = b"\xff\xfe"
    past = bytearray(plain)
    end = past.rindex(b"PK\x05\x06")
    past[end + 16 : end + 20] = (len(past) * 4).to_bytes(4, "little")
    frame = ok["frames"][0]
    return [
        ("not a ZIP", key, b"GIF89a not a zip at all", "not a frame batch"),
        ("empty object", key, b"", "not a frame batch"),
        ("ZIP without manifest", key, _zip(None, {BAD: good}), "no manifest"),
        ("manifest not JSON", key, _zip(b"{not json", {BAD: good}), "invalid manifest"),
        ("manifest a JSON list", key, _zip(b"[1, 2]", {BAD: good}), "invalid manifest"),
        ("manifest without sequence", key,
         _zip({k: v for k, v in ok.items() if k != "sequence"}, {BAD: good}), "sequence"),
        ("negative sequence", key, m(sequence=-1), "sequence"),
        ("sequence 10**130", key, m(sequence=10**130), "sequence"),
        ("sequence a string", key, m(sequence="zero"), "sequence"),
        ("unknown format", key, m(format="lfr-frame-batch/9"), "format"),
        ("extra manifest field", key, m(owner="me"), "owner"),
        ("deployment id with a slash", key, m(deployment_id="../x"), "deployment_id"),
        ("manifest names another deployment", key, m(deployment_id="dep-other"),
         "manifest speaks for"),
        ("unknown deployment", layout.batch_key("dep-nobody", cam, 0),
         _zip(_manifest("dep-nobody", cam, names), {BAD: good}), "unknown deployment"),
        ("camera not on the deployment", layout.batch_key(dep, "cam-9", 0),
         _zip(_manifest(dep, "cam-9", names), {BAD: good}), "not on this deployment"),
        ("more frames than allowed", key,
         _zip(_manifest(dep, cam, [f"{i:06d}.jpg" for i in range(65)]), {BAD: good}),
         "65 frames"),
        ("no frames", key, m(frames=[]), "frames"),
        ("duplicate frame names", key, m(frames=[frame, frame]), "unique"),
        ("frame name with a path", key, m(frames=[{**frame, "name": "../../etc/x.jpg"}]),
         "frames.0.name"),
        ("capture time without a zone", key,
         m(frames=[{**frame, "captured_at": "2026-12-01T10:00:00"}]), "time zone"),
        ("capture time not a time", key, m(frames=[{**frame, "captured_at": "yesterday"}]),
         "captured_at"),
        ("manifest over 256 KB", key, _zip(json.dumps({**ok, "pad": "x" * 300_000}).encode(),
                                           {BAD: good}), r"bytes \(max"),
        ("manifest flagged encrypted", key, flag_encrypted(plain, MANIFEST), "unreadable"),
        ("name flagged UTF-8 that is not", key, bytes(utf8), "not a frame batch"),
        ("central directory past the end", key, bytes(past),
         "not a frame batch|unreadable"),
        ("truncated archive", key, plain[: len(plain) // 2], "not a frame batch"),
        ("object key outside the layout", f"frames/{dep}/loose.lfrb", plain, "is not under"),
    ]


def _notification_of(sqs: Any, url: str, key: str) -> dict[str, Any]:
    """The S3 notification of `key`, taken off the queue (others, e.g. s3:TestEvent, too)."""
    quoted = quote_plus(key, safe="")
    for _ in range(10):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if key in m["Body"] or quoted in m["Body"]:
                return m
    raise AssertionError(f"no notification for {key}")


def test_bad_batches_are_rejected_with_the_reason_and_deleted(scenario_factory, local_stack,
                                                              caplog, report) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    s3, sqs = rt.client("s3"), rt.client("sqs")
    kinds = _batch_kinds(sc, jpeg(demo_person("Cory_Gardner", 2)))
    url = rt.queue_url(rt.settings.frames_queue)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    handler = FramesHandler(rt)
    for kind, key, body, says in kinds:
        caplog.clear()
        s3.put_object(Bucket=rt.settings.frames_bucket, Key=key, Body=body)
        msg = _notification_of(sqs, url, key)
        # The last delivery before the dead-letter queue.
        msg["Attributes"] = {"ApproximateReceiveCount": str(rt.settings.max_receive_count)}
        # The last try: the worker dead-letters the message itself, with its reason.
        out = handler(sqs_event([msg], arn, rt.settings.region), LambdaContext("frames_worker"))
        assert out["batchItemFailures"] == [], kind
        parked = [x for x in log_records(caplog, "dead-lettered with its reason")
                  if x["message_id"] == msg["MessageId"]]
        assert len(parked) == 1 and re.search(says, parked[0]["reason"]), kind
        rejected = [x for x in log_records(caplog, "batch rejected") if x["key"] == key]
        assert len(rejected) == 1, kind
        assert re.search(says, rejected[0]["reason"]), (kind, rejected[0]["reason"])
        assert key not in all_keys(s3, rt.settings.frames_bucket), kind
    assert sc.alerts() == []
    dep = rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.batches, dep.frames) == (0, 0)
    frame_kinds = len(FRAME_KINDS) + 4
    report(f"hostile input: {len(kinds)} batch kinds rejected with their reason and deleted; "
           f"{frame_kinds} frame kinds skipped and counted while the good frame alerted "
           f"({len(kinds) + frame_kinds} kinds)")
