"""Bounded JPEG decoding for untrusted frame bytes."""

from __future__ import annotations

import cv2
import numpy as np

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class FrameDecodeError(ValueError):
    """A frame could not be decoded; reason is one of REASONS."""

    REASONS = ("empty", "not_jpeg", "truncated", "corrupt", "too_large")

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment, walking the marker segments only."""
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise FrameDecodeError("corrupt", "bad marker before frame header")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            raise FrameDecodeError("corrupt", "no frame header")
        if pos + 2 > n:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise FrameDecodeError("corrupt", "bad segment length")
        if marker in _SOF_MARKERS:
            if length < 7 or pos + 7 > n:
                break
            height = int.from_bytes(data[pos + 3 : pos + 5], "big")
            width = int.from_bytes(data[pos + 5 : pos + 7], "big")
            if width == 0 or height == 0:
                raise FrameDecodeError("corrupt", "zero frame size")
            return width, height
        pos += length
    raise FrameDecodeError("truncated", "data ends before the frame header")


def decode_jpeg(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG bytes to a BGR uint8 image, refusing oversized frames before decoding."""
    if not data:
        raise FrameDecodeError("empty", "no bytes")
    data = bytes(data)
    if not data.startswith(_SOI):
        raise FrameDecodeError("not_jpeg", "missing JPEG SOI marker")
    # Some encoders and transports pad with zeros after EOI.
    if not data.rstrip(b"\x00").endswith(_EOI):
        raise FrameDecodeError("truncated", "missing JPEG EOI marker")
    width, height = jpeg_size(data)
    if width * height > max_pixels:
        raise FrameDecodeError("too_large", f"{width}x{height} exceeds {max_pixels} pixels")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameDecodeError("corrupt", "decoder rejected the data")
    return image
