from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest

from chalicelib.ingest.batch_format import BatchFormatError, BatchLimits, open_batch, pack_batch
from chalicelib.store import layout
from tests.conftest import flag_encrypted

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _zip(manifest: object, members: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in (members or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _manifest(**over: object) -> dict[str, object]:
    m: dict[str, object] = {
        "format": "lfr-frame-batch/1",
        "deployment_id": "dep-1",
        "camera_id": "cam-1",
        "sequence": 3,
        "frames": [{"name": "000000.jpg", "captured_at": T.isoformat()}],
    }
    m.update(over)
    return m


def test_round_trip() -> None:
    data = pack_batch("dep-1", "cam-1", 7, [(T, b"\xff\xd8a\xff\xd9"), (T, b"\xff\xd8b\xff\xd9")])
    manifest, frames = open_batch(data, BatchLimits())
    assert (manifest.deployment_id, manifest.camera_id, manifest.sequence) == ("dep-1", "cam-1", 7)
    got = list(frames)
    assert [f.data for f in got] == [b"\xff\xd8a\xff\xd9", b"\xff\xd8b\xff\xd9"]
    assert [f.index for f in got] == [0, 1]
    assert got[0].captured_at == T


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not a zip", "not a frame batch"),
        (_zip(_manifest(sequence=-1)), "sequence"),
        (_zip(_manifest(format="other/1")), "format"),
        (_zip(_manifest(camera_id="../etc")), "camera_id"),
        (_zip(_manifest(frames=[])), "frames"),
        (_zip(_manifest(extra=1)), "extra"),
        (
            _zip(_manifest(frames=[{"name": "a.jpg", "captured_at": "2026-11-26T10:00:00"}])),
            "time zone",
        ),
        (_zip(_manifest(frames=[{"name": "a.jpg", "captured_at": T.isoformat()}] * 2)), "unique"),
    ],
)
def test_bad_manifests_are_rejected_with_the_reason(data: bytes, says: str) -> None:
    with pytest.raises(BatchFormatError, match=says):
        open_batch(data, BatchLimits())


def test_missing_manifest() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("000000.jpg", b"x")
    with pytest.raises(BatchFormatError, match="no manifest"):
        open_batch(buf.getvalue(), BatchLimits())


def test_limits() -> None:
    frames = [(T, b"\xff\xd8" + b"x" * 100 + b"\xff\xd9")] * 3
    with pytest.raises(BatchFormatError, match="3 frames"):
        open_batch(pack_batch("d", "c", 0, frames), BatchLimits(max_frames=2))
    with pytest.raises(BatchFormatError, match="bytes"):
        open_batch(pack_batch("d", "c", 0, frames), BatchLimits(max_batch_bytes=100))
    _, it = open_batch(pack_batch("d", "c", 0, frames), BatchLimits(max_frame_bytes=50))
    assert [f.problem for f in it] == ["too_many_bytes"] * 3


def test_frame_named_but_absent_is_skipped_not_fatal() -> None:
    m = _manifest(
        frames=[
            {"name": "000000.jpg", "captured_at": T.isoformat()},
            {"name": "000001.jpg", "captured_at": T.isoformat()},
        ]
    )
    _, it = open_batch(_zip(m, {"000000.jpg": b"\xff\xd8\xff\xd9"}), BatchLimits())
    assert [f.problem for f in it] == [None, "missing"]


def test_key_layout() -> None:
    key = layout.batch_key("dep-1", "cam-1", 42)
    assert key == "frames/dep-1/cam-1/000000000042.lfrb"
    parsed = layout.parse_batch_key(key)
    assert parsed and (parsed.deployment_id, parsed.camera_id) == ("dep-1", "cam-1")
    assert layout.parse_batch_key("frames/dep-1/000.lfrb") is None
    assert layout.parse_batch_key("other/dep-1/cam/x") is None


# Hostile archives (issue 11, I-1 and I-2): each is a clear rejection or a skipped frame, never
# an error the worker does not expect (which was retried, dead-lettered and lost the batch).
def _two_frames(encrypt: str = "") -> bytes:
    m = _manifest(frames=[{"name": f"00000{i}.jpg", "captured_at": T.isoformat()}
                          for i in range(2)])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps(m))
        zf.writestr("000000.jpg", b"\xff\xd8a\xff\xd9")
        zf.writestr("000001.jpg", b"\xff\xd8b\xff\xd9")
    return flag_encrypted(buf.getvalue(), encrypt) if encrypt else buf.getvalue()


def test_an_encrypted_frame_is_skipped_and_the_rest_read() -> None:
    _, frames = open_batch(_two_frames(encrypt="000000.jpg"), BatchLimits())
    got = [(f.name, f.problem) for f in frames]
    assert got == [("000000.jpg", "unreadable"), ("000001.jpg", None)]


def test_an_encrypted_manifest_rejects_the_batch() -> None:
    with pytest.raises(BatchFormatError, match="manifest.json unreadable"):
        open_batch(_two_frames(encrypt="manifest.json"), BatchLimits())


def test_a_name_flagged_utf8_that_is_not_rejects_the_batch() -> None:
    data = bytearray(_two_frames())
    cd = data.rindex(b"PK\x01\x02")  # the last central-directory entry: 000001.jpg
    data[cd + 8 : cd + 10] = (int.from_bytes(data[cd + 8 : cd + 10], "little")
                              | 0x800).to_bytes(2, "little")
    data[cd + 46 : cd + 48] = b"\xff\xfe"
    with pytest.raises(BatchFormatError, match="not a frame batch"):
        open_batch(bytes(data), BatchLimits())


def test_a_central_directory_past_the_end_rejects_the_batch() -> None:
    data = bytearray(_two_frames())
    end = data.rindex(b"PK\x05\x06")
    data[end + 16 : end + 20] = (len(data) * 4).to_bytes(4, "little")
    with pytest.raises(BatchFormatError, match="not a frame batch|manifest.json unreadable"):
        open_batch(bytes(data), BatchLimits())


def test_an_absurd_sequence_rejects_the_batch() -> None:
    with pytest.raises(BatchFormatError, match="sequence"):
        open_batch(_zip(_manifest(sequence=10**130)), BatchLimits())


@pytest.mark.parametrize("body, reason", [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON list"),
    ('{"Records": {"a": 1}}', "Records is not a list"),
    ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "record 0 has no s3"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": 1}}]}', "record 0"),
])
def test_a_message_that_is_not_an_s3_notification_says_why(body: str, reason: str) -> None:
    from chalicelib.store.s3_events import NotificationError, s3_objects

    with pytest.raises(NotificationError, match=reason):
        s3_objects(body)


def test_other_s3_events_are_ignored() -> None:
    from chalicelib.store.s3_events import s3_objects

    assert s3_objects('{"Event": "s3:TestEvent"}') == []
    assert s3_objects('{"Records": [{"eventName": "ObjectRemoved:Delete"}]}') == []
