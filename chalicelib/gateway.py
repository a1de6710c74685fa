"""Camera gateway: reads a video file, an image folder or a camera/RTSP URL with OpenCV, samples
frames at a set rate, packs them into frame batches and uploads each with the camera's grant.

Capture times. A live source (a camera index or a stream URL) is stamped with the clock when each
frame is read: that is when it was captured. A recorded source is stamped in footage time: the
source's start (`GatewayOptions.start`, else when the gateway opened it) plus the frame's offset
into the footage. A video's offset is its container timestamp (CAP_PROP_POS_MSEC); the images of
a folder are one frame each at `fps`, in name order. Reading footage faster than it was recorded
therefore keeps its real spacing (the worker's tracking, key-frame interval and re-alert window
all go by capture time), and `realtime` paces the sending to the same clock, as a camera would.

File modification times and EXIF DateTimeOriginal are not used for folders: mtimes change when
files are copied, and EXIF times have one-second resolution and usually no time zone, so neither
gives the spacing of frames taken several per second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import requests

from chalicelib.ingest.batch_format import pack_batch
from chalicelib.store import layout

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class GatewayOptions:
    fps: float = 5.0  # frames sampled per second of footage (a folder: its frame rate)
    batch_frames: int = 8  # a batch is sent when it holds this many frames...
    # ...or when its first frame is this old (live sources). Bounds the capture -> push latency
    # from below: the first frame of a batch waits this long before it is uploaded.
    max_batch_age_s: float = 0.4
    max_side: int = 1280  # frames are downscaled to this before JPEG encoding
    jpeg_quality: int = 90
    realtime: bool = False  # send recorded footage no faster than it was recorded
    # Capture time of a recorded source's first frame (aware); None: when the source is opened.
    start: datetime | None = None

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, not {self.fps}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must carry a time zone")


class Clock(Protocol):
    """Time as the gateway sees it; tests inject one to check pacing without waiting."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class CapturedFrame:
    captured_at: datetime  # goes into the manifest
    taken: float  # the clock's monotonic time at which the frame counts as captured
    image: np.ndarray  # BGR


@dataclass(frozen=True)
class SentBatch:
    sequence: int
    frames: int
    sealed_at: datetime  # when the batch was closed (its last frame taken)
    uploaded_at: datetime  # when the upload returned


@dataclass
class GatewayReport:
    frames_read: int = 0
    frames_sent: int = 0
    batches: list[str] = field(default_factory=list)
    sent: list[SentBatch] = field(default_factory=list)


class Capture(Protocol):
    """What the gateway uses of cv2.VideoCapture."""

    def read(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def is_live(source: str) -> bool:
    """A camera index or a stream URL, as opposed to a file or folder of recorded footage."""
    return not Path(source).exists()


def open_capture(source: str) -> Capture:
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        raise ValueError(f"cannot open video source {source!r}")
    return cap


def folder_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(offset s, image) for the images of a folder, in name order, one every 1/fps s. An
    unreadable file keeps its slot: the frames after it keep their times."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for i, p in enumerate(files):
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is not None:
            yield i / fps, image


class Sampler:
    """Keeps the frames nearest a grid of `1/fps` s (from the first frame), so a source faster
    than `fps` is thinned evenly and jitter of up to `tolerance_s` loses no sample."""

    def __init__(self, fps: float, tolerance_s: float) -> None:
        self.step, self.tol, self.next = 1.0 / fps, tolerance_s, -math.inf

    def keep(self, t: float) -> bool:
        if t < self.next - self.tol:
            return False
        if self.next == -math.inf:
            self.next = t
        while self.next - self.tol <= t:
            self.next += self.step
        return True


def video_frames(cap: Capture, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(offset s, frame) sampled at `fps` by the container's timestamps, counted from the first
    frame's (a stream cut from a longer one may start at any time); a video slower than `fps`
    gives every frame, at its own time."""
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    # Half a source frame: 29.97 fps sampled at 5 keeps every 6th frame.
    sampler = Sampler(fps, 0.5 / native)
    first, last, index = 0.0, -math.inf, -1
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            index += 1
            t = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if index == 0:
                first = t
            t -= first
            if index > 0 and not t > last:
                t = index / native  # a backend that gives no timestamps
            last = t
            if sampler.keep(t):
                yield t, frame
    finally:
        cap.release()


def live_frames(cap: Capture, fps: float, clock: Clock) -> Iterator[CapturedFrame]:
    """Frames of a camera or stream, stamped when read, at most about `fps` per second."""
    native = cap.get(cv2.CAP_PROP_FPS)  # 0 where the camera does not say
    sampler = Sampler(fps, min(0.25 / fps, 0.5 / native) if native > 0 else 0.25 / fps)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            taken = clock.monotonic()
            if sampler.keep(taken):
                yield CapturedFrame(clock.now(), taken, frame)
    finally:
        cap.release()


def capture_frames(source: str, opts: GatewayOptions,
                   clock: Clock | None = None) -> Iterator[CapturedFrame]:
    """Sampled frames with their capture times, from a folder, a file or a camera/stream."""
    clock = clock or SystemClock()
    path = Path(source)
    if is_live(source):
        yield from live_frames(open_capture(source), opts.fps, clock)
        return
    recorded = (folder_frames(path, opts.fps) if path.is_dir()
                else video_frames(open_capture(source), opts.fps))
    start = opts.start or clock.now()
    t0 = clock.monotonic()
    for offset, image in recorded:
        due = t0 + offset
        if opts.realtime:
            wait = due - clock.monotonic()
            if wait > 0:
                clock.sleep(wait)
        else:
            due = clock.monotonic()  # read as fast as it goes: taken now, stamped in footage time
        yield CapturedFrame(start + timedelta(seconds=offset), due, image)


def iter_frames(source: str, opts: GatewayOptions) -> Iterator[np.ndarray]:
    """Sampled frames (BGR) at `opts.fps`, from a folder, a file or a stream URL."""
    for f in capture_frames(source, opts):
        yield f.image


def encode(frame: np.ndarray, opts: GatewayOptions) -> bytes:
    h, w = frame.shape[:2]
    scale = opts.max_side / max(h, w)
    if scale < 1:
        size = (round(w * scale), round(h * scale))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


class PresignedUploader:
    """Uploads with a camera grant (ops/cameras.py): no AWS credentials on the gateway."""

    def __init__(self, grant: dict[str, Any], session: requests.Session | None = None) -> None:
        self.grant = grant
        self.http = session or requests.Session()

    def upload(self, key: str, body: bytes) -> None:
        if not key.startswith(self.grant["prefix"]):
            raise ValueError(f"{key} is outside this camera's prefix")
        fields = {**self.grant["fields"], "key": key}
        resp = self.http.post(
            self.grant["url"], data=fields, files={"file": (key.rsplit("/", 1)[-1], body)},
            timeout=30,
        )
        if resp.status_code >= 300:
            raise RuntimeError(
                f"upload of {key} refused: HTTP {resp.status_code} {resp.text[:200]}"
            )


class Uploader(Protocol):
    def upload(self, key: str, body: bytes) -> None: ...


def run_gateway(
    source: str,
    uploader: Uploader,
    deployment_id: str,
    camera_id: str,
    opts: GatewayOptions,
    first_sequence: int = 0,
    clock: Clock | None = None,
) -> GatewayReport:
    clock = clock or SystemClock()
    report = GatewayReport()
    pending: list[tuple[datetime, bytes]] = []
    opened = 0.0  # when the pending batch's first frame was taken (clock.monotonic)
    sequence = first_sequence

    def flush() -> None:
        nonlocal sequence
        if not pending:
            return
        key = layout.batch_key(deployment_id, camera_id, sequence)
        sealed = clock.now()
        uploader.upload(key, pack_batch(deployment_id, camera_id, sequence, pending))
        report.sent.append(SentBatch(sequence, len(pending), sealed, clock.now()))
        report.batches.append(key)
        report.frames_sent += len(pending)
        pending.clear()
        sequence += 1

    for frame in capture_frames(source, opts, clock):
        report.frames_read += 1
        if not pending:
            opened = frame.taken
        pending.append((frame.captured_at, encode(frame.image, opts)))
        if len(pending) >= opts.batch_frames or \
                clock.monotonic() - opened >= opts.max_batch_age_s - 1e-3:
            flush()
    flush()
    return report
