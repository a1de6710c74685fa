"""Camera gateway: reads a video file, an image folder or a camera/RTSP URL with OpenCV, samples
frames at a set rate, packs them into frame batches and uploads each with the camera's grant."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import requests

from chalicelib.ingest.batch_format import pack_batch
from chalicelib.store import layout

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class GatewayOptions:
    fps: float = 5.0  # frames sampled per second of footage
    batch_frames: int = 8  # a batch is sent when it holds this many frames...
    # ...or when its first frame is this old (live sources). Bounds the capture -> push latency
    # from below: the first frame of a batch waits this long before it is uploaded.
    max_batch_age_s: float = 0.4
    max_side: int = 1280  # frames are downscaled to this before JPEG encoding
    jpeg_quality: int = 90
    realtime: bool = False  # pace file sources at their own frame rate, as a live camera


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


def iter_frames(source: str, opts: GatewayOptions) -> Iterator[np.ndarray]:
    """Sampled frames (BGR) at `opts.fps`, from a folder, a file or a stream URL."""
    path = Path(source)
    if path.is_dir():
        for p in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if image is not None:
                yield image
        return
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise ValueError(f"cannot open video source {source!r}")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step_ms = 1000.0 / opts.fps
    next_ms, t0 = 0.0, time.monotonic()
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if opts.realtime and path.exists():
                lag = pos_ms / 1000.0 - (time.monotonic() - t0)
                if lag > 0:
                    time.sleep(lag)
            if pos_ms + 1e-6 < next_ms and native > opts.fps:
                continue
            next_ms += step_ms
            yield frame
    finally:
        cap.release()


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


def run_gateway(
    source: str,
    uploader: PresignedUploader,
    deployment_id: str,
    camera_id: str,
    opts: GatewayOptions,
    first_sequence: int = 0,
) -> GatewayReport:
    report = GatewayReport()
    pending: list[tuple[datetime, bytes]] = []
    opened = 0.0
    sequence = first_sequence

    def flush() -> None:
        nonlocal sequence
        if not pending:
            return
        key = layout.batch_key(deployment_id, camera_id, sequence)
        sealed = datetime.now(UTC)
        uploader.upload(key, pack_batch(deployment_id, camera_id, sequence, pending))
        report.sent.append(SentBatch(sequence, len(pending), sealed, datetime.now(UTC)))
        report.batches.append(key)
        report.frames_sent += len(pending)
        pending.clear()
        sequence += 1

    for frame in iter_frames(source, opts):
        report.frames_read += 1
        if not pending:
            opened = time.monotonic()
        # Capture time is when the gateway took the frame, as for a live camera.
        pending.append((datetime.now(UTC), encode(frame, opts)))
        if len(pending) >= opts.batch_frames or \
                time.monotonic() - opened >= opts.max_batch_age_s - 1e-3:
            flush()
    flush()
    return report
