"""The packed watchlist snapshot: what it holds comes back exactly, anything else is refused."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from chalicelib.matching.snapshot import (
    Expected,
    Snapshot,
    SnapshotRefused,
    digest,
    pack,
    unpack,
)


def _snap(n: int = 5, version: int = 3) -> Snapshot:
    rng = np.random.default_rng(0)
    t = rng.standard_normal((n, 128)).astype(np.float32)
    return Snapshot("wl-1", version, "sface-abc", [f"s-{i}" for i in range(n)],
                    [f"Name {i} Ødegård" for i in range(n)], t)


def _expected(data: bytes, **kw: object) -> Expected:
    base = {"watchlist_id": "wl-1", "version": 3, "model_id": "sface-abc",
            "sha256": digest(data)}
    return Expected(**{**base, **kw})  # type: ignore[arg-type]


def test_round_trip_is_exact() -> None:
    snap = _snap()
    data = pack(snap)
    got = unpack(data, _expected(data))
    assert got.subject_ids == snap.subject_ids and got.names == snap.names
    assert got.templates.dtype == np.float32
    assert np.array_equal(got.templates, snap.templates)


def test_empty_list_round_trips() -> None:
    snap = Snapshot("wl-1", 3, "sface-abc", [], [], np.zeros((0, 128), np.float32))
    data = pack(snap)
    assert unpack(data, _expected(data)).templates.shape == (0, 128)


def test_a_changed_byte_is_refused_before_parsing() -> None:
    data = bytearray(pack(_snap()))
    expected = _expected(bytes(data))
    data[len(data) // 2] ^= 0x01  # one template bit: a different person would match
    with pytest.raises(SnapshotRefused) as exc:
        unpack(bytes(data), expected)
    assert exc.value.reason == "digest"


@pytest.mark.parametrize("field,value", [("version", 4), ("watchlist_id", "wl-2"),
                                         ("model_id", "sface-other")])
def test_another_version_list_or_model_is_stale(field: str, value: object) -> None:
    data = pack(_snap())
    with pytest.raises(SnapshotRefused) as exc:
        unpack(data, _expected(data, **{field: value}))
    assert exc.value.reason == "stale"


def _rezip(data: bytes, change: dict[str, bytes | None]) -> bytes:
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            body = change.get(name, src.read(name))
            if body is not None:
                dst.writestr(name, body)
        for name, body in change.items():
            if name not in src.namelist() and body is not None:
                dst.writestr(name, body)
    return out.getvalue()


def _npy(value: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("change", [
    {"names.npy": None},  # a member missing
    {"ids.npy": _npy(np.array(["s-0", "s-1"]))},  # fewer ids than templates
    {"templates.npy": _npy(np.full((5, 128), np.nan, np.float32))},
    {"templates.npy": _npy(np.zeros((5, 128), np.float64))},
    {"ids.npy": _npy(np.array([object()] * 5, dtype=object))},  # would need pickle
    {"meta.npy": _npy(np.array(json.dumps({"format": "lfr-watchlist-snapshot/9"})))},
    {"extra.npy": _npy(np.zeros(3))},
], ids=["member missing", "ids short", "nan", "float64", "pickled objects", "format", "extra"])
def test_a_malformed_snapshot_with_a_matching_digest_is_refused(change: dict) -> None:
    """Even a snapshot written by the service with the right digest (a bug, not an attacker)
    is used only when it is internally consistent."""
    data = _rezip(pack(_snap()), change)
    with pytest.raises(SnapshotRefused) as exc:
        unpack(data, _expected(data))
    assert exc.value.reason in ("format", "stale")


def test_not_a_zip_is_refused() -> None:
    data = b"not a snapshot"
    with pytest.raises(SnapshotRefused) as exc:
        unpack(data, _expected(data))
    assert exc.value.reason == "format"


@pytest.mark.parametrize("short", ["ids", "names", "templates"])
def test_pack_refuses_mismatched_lengths(short: str) -> None:
    s = _snap()
    ids, names, t = s.subject_ids, s.names, s.templates
    ids, names, t = (ids[:-1] if short == "ids" else ids, names[:-1] if short == "names" else names,
                     t[:-1] if short == "templates" else t)
    with pytest.raises(ValueError):
        pack(Snapshot("wl-1", 3, "m", ids, names, t))
