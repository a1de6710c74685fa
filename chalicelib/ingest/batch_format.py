"""Frame batch format `lfr-frame-batch/1` (spec: docs/frame-batch-format.md).

A batch is one ZIP archive (stored, not deflated: JPEG does not compress further) holding
`manifest.json` first and then the JPEG frames it names. ZIP was chosen over a home-made
container because every platform can write and inspect it, and its central directory lets the
reader check names and sizes before reading a single frame (no zip bombs: sizes are checked from
the directory, and only stored or deflated members within the limits are read).

A broken manifest makes the whole batch unusable (BatchFormatError: the message is retried and
ends in the dead-letter queue). A broken frame only loses that frame (see vision/decode.py).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.store.layout import ID_PATTERN

FORMAT = "lfr-frame-batch/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 1024
# Far above any camera's count and the archive job's sequences (10**15 + ...), far below what a
# DynamoDB number holds (38 digits): the sequence names alerts and objects.
MAX_SEQUENCE = 10**18
# What zipfile raises on a hostile archive or member (encrypted flag, bad UTF-8 name, offsets
# past the end, corrupt deflate data, unsupported compression), besides BadZipFile.
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError,
               NotImplementedError, UnicodeDecodeError, zlib.error)


class BatchFormatError(ValueError):
    """The batch as a whole cannot be read: nothing in it can be trusted."""


@dataclass(frozen=True)
class BatchLimits:
    max_frames: int = 64
    max_frame_bytes: int = 4 * 1024 * 1024
    max_batch_bytes: int = 64 * 1024 * 1024


class FrameEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}\.jpe?g$")
    captured_at: datetime

    @field_validator("captured_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("captured_at must carry a time zone (e.g. 2026-11-26T10:00:00Z)")
        return v


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field(pattern=rf"^{FORMAT}$")
    deployment_id: str = Field(pattern=ID_PATTERN.pattern)
    camera_id: str = Field(pattern=ID_PATTERN.pattern)
    sequence: int = Field(ge=0, lt=MAX_SEQUENCE)
    frames: list[FrameEntry] = Field(min_length=1)

    @field_validator("frames")
    @classmethod
    def _unique(cls, v: list[FrameEntry]) -> list[FrameEntry]:
        names = [f.name for f in v]
        if len(set(names)) != len(names):
            raise ValueError("frame names must be unique")
        return v


@dataclass(frozen=True)
class Frame:
    index: int
    name: str
    captured_at: datetime
    data: bytes | None  # None: named in the manifest but missing or over the byte limit
    problem: str | None = None


def pack_batch(
    deployment_id: str,
    camera_id: str,
    sequence: int,
    frames: Sequence[tuple[datetime, bytes]],
) -> bytes:
    """Build a batch from (capture time, JPEG bytes) pairs."""
    entries = [
        {"name": f"{i:06d}.jpg", "captured_at": t.isoformat()} for i, (t, _) in enumerate(frames)
    ]
    manifest = {
        "format": FORMAT,
        "deployment_id": deployment_id,
        "camera_id": camera_id,
        "sequence": sequence,
        "frames": entries,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, separators=(",", ":")))
        for entry, (_, data) in zip(entries, frames, strict=True):
            zf.writestr(entry["name"], data)
    return buf.getvalue()


def read_manifest(zf: zipfile.ZipFile, limits: BatchLimits) -> Manifest:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise BatchFormatError("batch has no manifest.json") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise BatchFormatError(
            f"manifest.json is {info.file_size} bytes (max {MAX_MANIFEST_BYTES})"
        )
    try:
        manifest = Manifest.model_validate_json(zf.read(info))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise BatchFormatError(f"invalid manifest: {problems}") from None
    except _ZIP_ERRORS as exc:
        raise BatchFormatError(f"manifest.json unreadable: {exc}") from None
    if len(manifest.frames) > limits.max_frames:
        raise BatchFormatError(
            f"manifest lists {len(manifest.frames)} frames (max {limits.max_frames})"
        )
    return manifest


def open_batch(data: bytes, limits: BatchLimits) -> tuple[Manifest, Iterator[Frame]]:
    """Check the container and manifest; frames are read lazily, one at a time."""
    if len(data) > limits.max_batch_bytes:
        raise BatchFormatError(f"batch is {len(data)} bytes (max {limits.max_batch_bytes})")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise BatchFormatError(f"not a frame batch (ZIP) archive: {exc}") from None
    manifest = read_manifest(zf, limits)
    return manifest, _frames(zf, manifest, limits)


def _frames(zf: zipfile.ZipFile, manifest: Manifest, limits: BatchLimits) -> Iterator[Frame]:
    with zf:
        for i, entry in enumerate(manifest.frames):
            try:
                info = zf.getinfo(entry.name)
            except KeyError:
                yield Frame(i, entry.name, entry.captured_at, None, "missing")
                continue
            if info.file_size > limits.max_frame_bytes:
                yield Frame(i, entry.name, entry.captured_at, None, "too_many_bytes")
                continue
            try:
                data = zf.read(info)
            except _ZIP_ERRORS:
                yield Frame(i, entry.name, entry.captured_at, None, "unreadable")
                continue
            yield Frame(i, entry.name, entry.captured_at, data)
