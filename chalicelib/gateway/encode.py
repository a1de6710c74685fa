"""Frames to JPEG at the gateway's size and quality (docs/bandwidth.md chose the defaults)."""

from __future__ import annotations

import cv2
import numpy as np

from chalicelib.gateway.options import GatewayOptions


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
