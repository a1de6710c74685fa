from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest

from chalicelib.ingest.batch_format import BatchFormatError, BatchLimits, open_batch, pack_batch
from chalicelib.store import layout

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
