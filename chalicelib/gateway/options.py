"""What a gateway is told: sampling, batching, encoding, and how hard it tries on a bad uplink."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class GatewayOptions:
    fps: float = 5.0  # frames sampled per second of footage (a folder: its frame rate)
    batch_frames: int = 8  # a batch is sent when it holds this many frames...
    # ...or when its first frame is this old (live sources). Bounds the capture -> push latency
    # from below: the first frame of a batch waits this long before it is uploaded.
    max_batch_age_s: float = 0.4
    # Frames are downscaled to max_side, then JPEG-encoded. 1920 at quality 70 (was 1280 at 90):
    # on a 1080p camera it keeps faces of 32-48 px above the quality gate's min_face_px, for
    # +5-22% of the uplink, and caught 136/150 on the walk-by against 135 (docs/bandwidth.md).
    # Downscaling and q70 together lose catches (1280 q70: 125/150): lower the size, keep q90.
    max_side: int = 1920
    jpeg_quality: int = 70
    realtime: bool = False  # send recorded footage no faster than it was recorded
    # Capture time of a recorded source's first frame (aware); None: when the source is opened.
    start: datetime | None = None
    # -- the uplink ---------------------------------------------------------------------
    # A batch is retried while its first frame is younger than this, then dropped and counted:
    # an alert about someone who walked past two minutes ago still matters, one from an hour
    # ago does not.
    max_age_s: float = 120.0
    # Sealed batches waiting for the uplink, in memory only (frames of passers-by never touch
    # the van's disk). 48 MiB holds 42-138 s of one camera at the defaults, by how busy the
    # scene is (docs/bandwidth.md): about the retry limit below.
    queue_bytes: int = 48 * 1024 * 1024
    uploaders: int = 2  # uploads in flight at once: a 4G round trip is long, frames are small
    upload_timeout_s: float = 20.0  # connect and read, per try
    retry_initial_s: float = 0.25  # first backoff; doubles with jitter up to retry_max_s
    retry_max_s: float = 8.0
    # -- live sources -------------------------------------------------------------------
    stall_s: float = 6.0  # no frame for this long: the stream is reopened
    reconnect_max_s: float = 15.0  # backoff cap between reopening attempts
    max_reconnects: int | None = None  # None: for as long as the gateway runs
    # -- reporting and stopping ---------------------------------------------------------
    heartbeat_s: float = 5.0  # LFR_GATEWAY_HEARTBEAT_S
    flush_s: float = 10.0  # on SIGTERM, how long the queue may take to drain

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, not {self.fps}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if self.batch_frames < 1 or self.uploaders < 1:
            raise ValueError("batch_frames and uploaders must be at least 1")
        if not self.max_age_s > 0 or not self.heartbeat_s > 0:
            raise ValueError("max_age_s and heartbeat_s must be positive")
