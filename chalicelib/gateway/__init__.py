"""The camera gateway, the half of the system that runs on the van: capture (capture.py),
encode (encode.py), a bounded queue with a shedding policy (outbox.py), uploads that retry
while a batch still matters (uplink.py), a grant renewed for the whole day (grants.py), restart-
safe batch keys (sequence.py), and a heartbeat to the API (heartbeat.py); run.py joins them."""

from chalicelib.gateway.capture import (
    Capture,
    CapturedFrame,
    Clock,
    SystemClock,
    capture_frames,
    is_live,
    iter_frames,
    open_capture,
    video_frames,
)
from chalicelib.gateway.encode import encode
from chalicelib.gateway.options import GatewayOptions
from chalicelib.gateway.run import GatewayReport, SentBatch, run_gateway
from chalicelib.gateway.uplink import PresignedUploader

__all__ = [
    "Capture", "CapturedFrame", "Clock", "GatewayOptions", "GatewayReport", "PresignedUploader",
    "SentBatch", "SystemClock", "capture_frames", "encode", "is_live", "iter_frames",
    "open_capture", "run_gateway", "video_frames",
]
