"""One camera's gateway: capture and upload apart, joined by a bounded in-memory queue.

The calling thread captures: it samples, stamps and encodes frames, seals them into batches and
puts them in the outbox (gateway/outbox.py says what is shed when the uplink falls behind).
`opts.uploaders` threads drain the outbox (gateway/uplink.py retries each batch while it is young
enough to matter). So a slow or broken uplink never stalls capture: a live camera is read at its
own pace and its frames keep true capture times.

Stopping: when the source ends, everything queued is sent (each batch bounded by its age limit).
When `stop` is set (SIGTERM), capture ends at once and the queue has `opts.flush_s` to drain;
whatever is left then is shed as "shutdown". Either way every frame read is accounted for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib.gateway.capture import Capture, Clock, SystemClock, capture_frames
from chalicelib.gateway.encode import encode
from chalicelib.gateway.heartbeat import Heartbeat
from chalicelib.gateway.options import GatewayOptions
from chalicelib.gateway.outbox import Outbox, SealedBatch
from chalicelib.gateway.sequence import CaptureTimeSequence, CountingSequence
from chalicelib.gateway.stats import GatewayStats
from chalicelib.gateway.uplink import Delivered, Deliverer, PresignedUploader
from chalicelib.ingest.batch_format import pack_batch
from chalicelib.store import layout


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
    batches: list[str] = field(default_factory=list)  # keys sent, in sequence order
    sent: list[SentBatch] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class Uploader(Protocol):
    def upload(self, key: str, body: bytes) -> None: ...


class _Plain:
    """Any object with `upload(key, body)` (tests' recorders): no classification, no retry;
    an exception drops the batch as rejected."""

    def __init__(self, uploader: Uploader) -> None:
        self.inner = uploader

    def deliver(self, batch: SealedBatch) -> Delivered:
        try:
            self.inner.upload(batch.key, batch.body)
        except Exception:  # noqa: BLE001  (whatever a test's uploader raises)
            return Delivered("rejected")
        return Delivered("sent")


class _Ledger:
    """Counts each batch's outcome exactly once. At shutdown, batches still in flight when the
    flush bound runs out are counted as shed ("shutdown") and their late outcome is ignored:
    the process exits without waiting for a request that may hang for its whole timeout."""

    def __init__(self, stats: GatewayStats, clock: Clock) -> None:
        self.stats, self.clock = stats, clock
        self.lock = threading.Lock()
        self.inflight: dict[int, SealedBatch] = {}
        self.abandoned: set[int] = set()
        self.closed = False
        self.sent: list[SentBatch] = []
        self.keys: list[tuple[int, str]] = []

    def taken(self, batch: SealedBatch) -> bool:
        """False (and counted as shed) when taken after the shutdown gave up."""
        with self.lock:
            if self.closed:
                self.stats.shed("shutdown", batch.frames)
                return False
            self.inflight[batch.sequence] = batch
            return True

    def done(self, batch: SealedBatch, d: Delivered) -> None:
        with self.lock:
            self.inflight.pop(batch.sequence, None)
            if batch.sequence in self.abandoned:
                return
            if d.outcome == "sent":
                self.stats.sent(batch.frames, len(batch.body), d.uplink_ms)
                self.sent.append(SentBatch(batch.sequence, batch.frames, batch.sealed_at,
                                           self.clock.now()))
                self.keys.append((batch.sequence, batch.key))
            else:
                self.stats.shed(d.outcome, batch.frames)

    def abandon(self) -> None:
        with self.lock:
            self.closed = True
            for seq, batch in self.inflight.items():
                self.abandoned.add(seq)
                self.stats.shed("shutdown", batch.frames)
            self.inflight.clear()


def run_gateway(
    source: str,
    uploader: Uploader,
    deployment_id: str,
    camera_id: str,
    opts: GatewayOptions,
    first_sequence: int | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    stats: GatewayStats | None = None,
    heartbeat: Heartbeat | None = None,
    opener: Any = None,
) -> GatewayReport:
    clock = clock or SystemClock()
    stats = stats or GatewayStats()
    stop = stop or threading.Event()
    abort = threading.Event()  # the flush bound ran out: uploads in retry give up
    outbox = Outbox(opts.queue_bytes, stats)
    sequences = (CaptureTimeSequence() if first_sequence is None
                 else CountingSequence(first_sequence))
    deliverer: Deliverer | _Plain = (
        Deliverer(uploader, opts, stats, clock.monotonic, abort)
        if isinstance(uploader, PresignedUploader) else _Plain(uploader))
    ledger = _Ledger(stats, clock)

    def upload_loop() -> None:
        while not abort.is_set() and (batch := outbox.get()) is not None:
            if ledger.taken(batch):
                ledger.done(batch, deliverer.deliver(batch))

    workers = [threading.Thread(target=upload_loop, name=f"uploader-{i}", daemon=True)
               for i in range(opts.uploaders)]
    for w in workers:
        w.start()
    if heartbeat is not None:
        heartbeat.start()
    try:
        _capture(source, opts, clock, stats, stop, outbox, sequences, deployment_id, camera_id,
                 opener)
    finally:
        outbox.close()
        if stop.is_set():  # SIGTERM: a bounded flush, then give up what is left
            _join(workers, opts.flush_s)
            abort.set()
            outbox.shed_all("shutdown")
            ledger.abandon()
            _join(workers, 0.5)  # those not stuck in a request leave at once
        else:
            _join(workers, None)
        if heartbeat is not None:
            heartbeat.stop()
    summary = stats.summary()
    return GatewayReport(summary["frames_read"], summary["frames_sent"],
                         [k for _, k in sorted(ledger.keys)],
                         sorted(ledger.sent, key=lambda b: b.sequence), summary)


def _join(workers: list[threading.Thread], within_s: float | None) -> None:
    """Waits for the uploaders, all of them within `within_s` of now (None: for good)."""
    deadline = None if within_s is None else time.monotonic() + within_s
    for w in workers:
        w.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def _capture(source: str, opts: GatewayOptions, clock: Clock, stats: GatewayStats,
             stop: threading.Event, outbox: Outbox, sequences: Any, deployment_id: str,
             camera_id: str, opener: Capture | None) -> None:
    pending: list[tuple[datetime, bytes]] = []
    opened = 0.0  # when the pending batch's first frame was taken (clock.monotonic)
    previous: datetime | None = None
    read = 0

    def seal() -> None:
        if not pending:
            return
        seq = sequences.next(pending[0][0])
        body = pack_batch(deployment_id, camera_id, seq, pending)
        outbox.put(SealedBatch(seq, layout.batch_key(deployment_id, camera_id, seq), body,
                               len(pending), opened, clock.now()))
        pending.clear()

    for frame in capture_frames(source, opts, clock, stats, stop, opener):
        if frame is None:  # the stream broke: send what it gave, count no watching across
            seal()
            previous = None
            continue
        read += 1
        stats.add(frames_read=1)
        if previous is not None:
            gap = (frame.captured_at - previous).total_seconds()
            if 0 < gap <= opts.stall_s:
                stats.add(watching_s=gap)
        previous = frame.captured_at
        stats.set(last_capture_at=frame.captured_at)
        thin = outbox.thinning()
        if thin > 1 and read % thin:
            stats.shed("thinned", 1)
            continue
        try:
            jpeg = encode(frame.image, opts)
        except Exception:  # noqa: BLE001  (a frame OpenCV will not encode: count it, go on)
            stats.shed("encode_failed", 1)
            continue
        if not pending:
            opened = frame.taken
        pending.append((frame.captured_at, jpeg))
        if len(pending) >= opts.batch_frames or \
                clock.monotonic() - opened >= opts.max_batch_age_s - 1e-3:
            seal()
    seal()
