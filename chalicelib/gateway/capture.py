"""The gateway's capture side: reads a video file, an image folder or a camera/RTSP URL with
OpenCV, samples frames at a set rate and stamps each with its capture time.

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
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from chalicelib.gateway.options import GatewayOptions
from chalicelib.gateway.stats import GatewayStats

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


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


class Capture(Protocol):
    """What the gateway uses of cv2.VideoCapture."""

    def read(self) -> tuple[bool, Any]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def is_live(source: str) -> bool:
    """A camera index or a stream URL, as opposed to a file or folder of recorded footage."""
    return not Path(source).exists()


def open_capture(source: str, read_timeout_s: float = 2.0) -> Capture:
    """A camera index, or a stream URL with FFmpeg's open and read timeouts set: with OpenCV's
    defaults a stalled RTSP server holds `read()` for 30 s per try (FACTS.md)."""
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
    else:
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(500, int(read_timeout_s * 1000))])
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


def live_frames(source: str, opts: GatewayOptions, clock: Clock, stats: GatewayStats,
                stop: threading.Event, opener: Callable[..., Capture] | None = None,
                ) -> Iterator[CapturedFrame | None]:
    """Frames of a camera or stream, stamped when read, at most about `fps` per second. A
    stream that ends, fails or stalls is reopened with backoff (capped at reconnect_max_s)
    until `stop` is set: capture times are the clock's, so they stay true across the gap."""
    opener = opener or open_capture
    backoff, attempts = 0.5, 0
    # FFmpeg gives up after about three read timeouts (FACTS.md): a third of the stall bound.
    read_timeout = opts.stall_s / 3
    while not stop.is_set():
        try:
            cap = opener(source, read_timeout)
        except ValueError:
            cap = None
        delivered = False
        if cap is not None:
            native = cap.get(cv2.CAP_PROP_FPS)  # 0 where the camera does not say
            tol = min(0.25 / opts.fps, 0.5 / native) if native > 0 else 0.25 / opts.fps
            sampler = Sampler(opts.fps, tol)
            try:
                while not stop.is_set():
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if not delivered:
                        delivered = True
                        backoff = 0.5
                        stats.set(source_state="streaming")
                    taken = clock.monotonic()
                    if sampler.keep(taken):
                        yield CapturedFrame(clock.now(), taken, frame)
            finally:
                cap.release()
        if stop.is_set():
            return
        if opts.max_reconnects is not None and attempts >= opts.max_reconnects:
            stats.set(source_state="ended")
            return
        attempts += 1
        stats.add(reconnects=1)
        stats.set(source_state="reconnecting")
        yield None  # tells the batcher the stream broke: seal what it holds
        if not delivered:  # opened nothing, or nothing came: back off before the next try
            stop.wait(backoff)
            backoff = min(backoff * 2, opts.reconnect_max_s)


def capture_frames(source: str, opts: GatewayOptions, clock: Clock | None = None,
                   stats: GatewayStats | None = None, stop: threading.Event | None = None,
                   opener: Callable[..., Capture] | None = None,
                   ) -> Iterator[CapturedFrame | None]:
    """Sampled frames with their capture times, from a folder, a file or a camera/stream. A
    None marks a live stream's break (it is being reopened)."""
    clock = clock or SystemClock()
    stats = stats or GatewayStats()
    stop = stop or threading.Event()
    path = Path(source)
    if is_live(source):
        yield from live_frames(source, opts, clock, stats, stop, opener)
        return
    recorded = (folder_frames(path, opts.fps) if path.is_dir()
                else video_frames((opener or open_capture)(source), opts.fps))
    stats.set(source_state="streaming")
    start = opts.start or clock.now()
    t0 = clock.monotonic()
    for offset, image in recorded:
        if stop.is_set():
            break
        due = t0 + offset
        if opts.realtime:
            wait = due - clock.monotonic()
            if wait > 0:
                clock.sleep(wait)
        else:
            due = clock.monotonic()  # read as fast as it goes: taken now, stamped in footage time
        yield CapturedFrame(start + timedelta(seconds=offset), due, image)
    stats.set(source_state="ended")


def iter_frames(source: str, opts: GatewayOptions) -> Iterator[np.ndarray]:
    """Sampled frames (BGR) at `opts.fps`, from a folder, a file or a stream URL."""
    for f in capture_frames(source, opts):
        if f is not None:
            yield f.image
