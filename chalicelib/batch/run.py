"""Footage in S3 -> frames -> the stream path's processing and alerts, in one process.

An archive is an object under archive/<deployment>/<camera>/: a video file (.mp4, .avi, .mov,
.mkv, ...) or an archive of frames (.zip or .tar[.gz] of JPEG/PNG images, in name order). Frames
are sampled and encoded exactly as the camera gateway does, grouped into chunks of the gateway's
batch size, and each chunk goes through ingest/process.py `process_frames` and
alerts/raise_alert.py `raise_alert`: the same decisions (deployment, watchlist, threshold, one
alert per subject per chunk) and the same alert records, crops and officer notifications.

Alert ids are derived from (deployment, camera, sequence, subject) as in the stream path; an
archive's chunks get sequences of their own (derived from the object's key and ETag, far above any
live camera's), so running the same archive twice raises the same alerts once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from chalicelib.gateway import GatewayOptions, encode, open_capture, video_frames
from chalicelib.ingest.batch_format import BatchFormatError, Frame
from chalicelib.ingest.decide import camera_context, decide_and_alert, metrics
from chalicelib.ingest.track_store import MemoryTrackStore
from chalicelib.runtime import Runtime
from chalicelib.settings import Settings
from chalicelib.store import layout
from chalicelib.vision.decode import FrameDecodeError, decode_image

log = logging.getLogger("lfr.batch")
T = TypeVar("T")

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts"}
FRAME_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
_ARCHIVE_KEY = re.compile(r"^archive/(?P<deployment>[^/]+)/(?P<camera>[^/]+)/(?P<name>.+)$")
# Archive chunk sequences start here: live cameras count up from 0 and never get near it.
SEQUENCE_BASE = 10**15


@dataclass(frozen=True)
class ArchiveKey:
    deployment_id: str
    camera_id: str
    name: str


def parse_archive_key(key: str) -> ArchiveKey | None:
    m = _ARCHIVE_KEY.match(key)
    if not m or not (layout.valid_id(m["deployment"]) and layout.valid_id(m["camera"])):
        return None
    return ArchiveKey(m["deployment"], m["camera"], m["name"])


def archive_sequence_base(key: str, etag: str) -> int:
    digest = int(hashlib.sha256(f"{key}|{etag}".encode()).hexdigest()[:12], 16)
    return SEQUENCE_BASE + (digest % 10**9) * 10**5


@dataclass
class BatchOptions:
    fps: float = 5.0  # frames sampled per second of video (the gateway's default)
    chunk_frames: int = 8  # frames decided together (the gateway's batch size)
    max_side: int = GatewayOptions.max_side  # encoded exactly as the gateway encodes
    jpeg_quality: int = GatewayOptions.jpeg_quality


@dataclass
class ArchiveReport:
    key: str
    deployment_id: str
    camera_id: str
    chunks: int = 0
    frames: int = 0
    faces_seen: int = 0
    alerts: list[str] = field(default_factory=list)
    alerts_continued: int = 0
    seconds: float = 0.0
    providers: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "deployment_id": self.deployment_id,
                "camera_id": self.camera_id, "chunks": self.chunks, "frames": self.frames,
                "faces_seen": self.faces_seen, "alerts": self.alerts,
                "alerts_continued": self.alerts_continued,
                "seconds": round(self.seconds, 2), "frames_per_s": round(self.frames_per_s, 2),
                "providers": self.providers}


def _kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(FRAME_ARCHIVE_SUFFIXES):
        return "frames"
    if PurePosixPath(lower).suffix in VIDEO_SUFFIXES:
        return "video"
    raise BatchFormatError(f"{name}: neither a video nor an archive of frames")


def _image_members(path: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the images in a zip or tar, in name order."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist()
                           if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
            for n in names:
                yield n, zf.read(n)
        return
    with tarfile.open(path) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile()
                          and PurePosixPath(m.name).suffix.lower() in IMAGE_SUFFIXES),
                         key=lambda m: m.name)
        for m in members:
            f = tf.extractfile(m)
            if f is not None:
                yield m.name, f.read()


def iter_timed_jpegs(path: str, kind: str, opts: BatchOptions,
                     max_pixels: int = Settings.max_frame_pixels,
                     ) -> Iterator[tuple[float, bytes]]:
    """(offset s into the footage, JPEG bytes the gateway would have uploaded): a video by its
    own timestamps, as the gateway samples it; an archive of frames one every 1/fps s."""
    gw = GatewayOptions(fps=opts.fps, max_side=opts.max_side, jpeg_quality=opts.jpeg_quality)
    if kind == "video":
        for offset, frame in video_frames(open_capture(path), opts.fps):
            yield offset, encode(frame, gw)
        return
    for i, (name, data) in enumerate(_image_members(path)):
        if PurePosixPath(name).suffix.lower() in (".jpg", ".jpeg") and data[:3] == b"\xff\xd8\xff":
            yield i / opts.fps, data  # already what a camera sends; decode limits apply downstream
            continue
        try:  # other images within the frame limits, re-encoded as the gateway would
            image = decode_image(data, max_pixels, ("jpeg", "png", "bmp"))
        except FrameDecodeError:
            continue
        yield i / opts.fps, encode(image, gw)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _locate(s3: Any, bucket: str, key: str) -> tuple[str, dict[str, Any]]:
    """The object's head; keys from S3 events arrive URL-encoded."""
    for candidate in dict.fromkeys([key, unquote_plus(key)]):
        try:
            return candidate, s3.head_object(Bucket=bucket, Key=candidate)
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
    raise FileNotFoundError(f"s3://{bucket}/{key} not found")


def _providers(pipeline: Any) -> list[str]:
    try:
        return list(pipeline.detector.session.get_providers())
    except AttributeError:
        return []


def process_archive(rt: Runtime, bucket: str, key: str,
                    opts: BatchOptions | None = None) -> ArchiveReport:
    opts = opts or BatchOptions()
    s3 = rt.client("s3")
    key, head = _locate(s3, bucket, key)
    where = parse_archive_key(key)
    if where is None:
        raise BatchFormatError(f"object key {key!r} is not under archive/<deployment>/<camera>/")
    kind = _kind(where.name)
    cam = camera_context(rt, where.deployment_id, where.camera_id)
    # When the footage was recorded: object metadata `recorded-at` (ISO 8601), else upload time.
    recorded = head.get("Metadata", {}).get("recorded-at")
    start = datetime.fromisoformat(recorded) if recorded else head["LastModified"]
    base = archive_sequence_base(key, head.get("ETag", ""))
    report = ArchiveReport(key, where.deployment_id, where.camera_id,
                           providers=_providers(rt.pipeline))
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=PurePosixPath(where.name).suffix or ".bin") as tmp:
        s3.download_fileobj(bucket, key, tmp)
        tmp.flush()
        # One process sees the whole archive in order: tracks continue from chunk to chunk in
        # memory (the stream path keeps them in DynamoDB).
        store = MemoryTrackStore()
        timed = iter_timed_jpegs(tmp.name, kind, opts, rt.settings.max_frame_pixels)
        for n, chunk in enumerate(_chunks(timed, opts.chunk_frames)):
            frames = [Frame(i, f"{i:06d}.jpg", start + timedelta(seconds=offset), data)
                      for i, (offset, data) in enumerate(chunk)]
            done = decide_and_alert(rt, cam, base + n, frames, store=store)
            report.alerts += done.alerts
            report.alerts_continued += done.continued
            report.chunks += 1
            report.frames += done.outcome.frames_processed
            report.faces_seen += done.outcome.faces_seen
            log.info("chunk %d: %s", n, done.outcome.counts())
    report.seconds = time.perf_counter() - t0
    metrics.flush_metrics()
    return report


def archive_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)
