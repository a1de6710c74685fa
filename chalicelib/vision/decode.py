"""Bounded decoding of untrusted image bytes: what decoding will cost is read from the headers
and refused before a single pixel is decoded.

Pixels: every format's header states its size (JPEG SOF, PNG IHDR, BMP info header); more than
`max_pixels` is refused, so a small file cannot inflate into gigabytes.

Scans: a progressive JPEG decoder walks every block of the image once per scan, so its cost is
about pixels x scans, whatever the file size: a 79 KB file repeating one scan 1,500 times took
30-39 s to decode (a 4K frame, 0.5-5 CPU-ms per scan on this machine class, ~20 ms on Lambda).
Real encoders write few scans: libjpeg's (and so OpenCV's and Pillow's) progressive script
writes 10 for colour and 6 for grey, and the progressive photos in our test data have 5-14. We
allow up to MAX_SCANS, and fewer on big frames: scans x pixels may not exceed SCAN_BUDGET scans
at the pixel limit (16 at 3840x2160, 64 at 1920x1080 and below). Worst case at the default
limits: ~0.3 s for one frame, ~20 s for a batch of 64, inside the worker's 90 s.

Hand-written: neither OpenCV nor Pillow exposes a scan limit (libjpeg-turbo has one only in its
TurboJPEG 3 API, TJPARAM_SCANLIMIT, which neither uses), so the marker segments are walked here,
finding markers the way libjpeg does (payloads skipped by their length, entropy-coded data and
stray bytes up to the next 0xFF that is not stuffing, fill or a restart marker).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"
_PNG = b"\x89PNG\r\n\x1a\n"
_BMP = b"BM"
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS, _EOI_MARKER, _SOI_MARKER = 0xDA, 0xD9, 0xD8
# Markers with no length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# The next marker: 0xFF followed by anything but 0x00 (stuffing), 0xFF (fill) or RST0-7.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")

MAX_SCANS = 64
SCAN_BUDGET = 16
# Far more than any encoder writes (a progressive file: ~30; an ICC profile split in 64 KB
# chunks adds one per chunk); bounds the walk itself on a file of nothing but tiny segments.
MAX_SEGMENTS = 1024


class FrameDecodeError(ValueError):
    """A frame could not be decoded; reason is one of REASONS."""

    REASONS = ("empty", "not_jpeg", "unsupported_format", "truncated", "corrupt", "too_large",
               "too_many_scans", "too_many_segments")

    def __init__(self, reason: str, message: str = "") -> None:
        assert reason in self.REASONS, reason
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    scans: int
    progressive: bool


def _segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, payload start, payload end) of each marker segment after SOI, up to EOI."""
    pos, n = 2, len(data)
    while True:
        found = _NEXT_MARKER.search(data, pos)  # libjpeg skips stray bytes the same way
        if found is None:
            raise FrameDecodeError("truncated", "data ends before the end of image")
        pos = found.end()
        marker = data[pos - 1]
        if marker in _STANDALONE:
            continue
        if marker in (_EOI_MARKER, _SOI_MARKER):
            yield marker, pos, pos
            return
        if pos + 2 > n:
            raise FrameDecodeError("truncated", "data ends inside a segment header")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise FrameDecodeError("corrupt", "bad segment length")
        if pos + length > n:
            raise FrameDecodeError("truncated", "data ends inside a segment")
        yield marker, pos + 2, pos + length
        pos += length  # a scan's entropy-coded data follows its header: the search skips it


def _sof_size(data: bytes, start: int, end: int) -> tuple[int, int]:
    if end - start < 5:
        raise FrameDecodeError("corrupt", "short frame header")
    height = int.from_bytes(data[start + 1 : start + 3], "big")
    width = int.from_bytes(data[start + 3 : start + 5], "big")
    if width == 0 or height == 0:
        raise FrameDecodeError("corrupt", "zero frame size")
    return width, height


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment, walking the marker segments only."""
    for marker, start, end in _segments(data):
        if marker in _SOF_MARKERS:
            return _sof_size(data, start, end)
        if marker in (_SOS, _EOI_MARKER, _SOI_MARKER):
            break
    raise FrameDecodeError("corrupt", "no frame header")


def check_jpeg(data: bytes, max_pixels: int) -> JpegHeader:
    """Walks the whole file's markers; raises FrameDecodeError for what must not be decoded."""
    size: tuple[int, int] | None = None
    scans = 0
    allowed = MAX_SCANS
    progressive = False
    for segments, (marker, start, end) in enumerate(_segments(data), 1):
        if segments > MAX_SEGMENTS:
            raise FrameDecodeError("too_many_segments", f"more than {MAX_SEGMENTS} segments")
        if marker in _SOF_MARKERS:
            if size is not None:
                raise FrameDecodeError("corrupt", "two frame headers")
            size = _sof_size(data, start, end)
            pixels = size[0] * size[1]
            if pixels > max_pixels:
                raise FrameDecodeError(
                    "too_large", f"{size[0]}x{size[1]} exceeds {max_pixels} pixels")
            allowed = min(MAX_SCANS, SCAN_BUDGET * max_pixels // pixels)
            progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
        elif marker == _SOS:
            if size is None:
                raise FrameDecodeError("corrupt", "scan before the frame header")
            scans += 1
            if scans > allowed:  # stop here: the walk itself stays cheap
                raise FrameDecodeError(
                    "too_many_scans",
                    f"more than {allowed} scans at {size[0]}x{size[1]} (encoders write ~10)")
        elif marker == _SOI_MARKER:
            raise FrameDecodeError("corrupt", "start of image inside the image")
    if size is None:
        raise FrameDecodeError("corrupt", "no frame header")
    if scans == 0:
        raise FrameDecodeError("corrupt", "no scan")
    return JpegHeader(size[0], size[1], scans, progressive)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise FrameDecodeError("corrupt", "zero image size")
    if width * height > max_pixels:
        raise FrameDecodeError("too_large", f"{width}x{height} exceeds {max_pixels} pixels")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which the PNG spec puts first."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise FrameDecodeError("corrupt", "PNG without its IHDR header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def bmp_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the info header (OS/2 core headers have 16-bit sizes)."""
    if len(data) < 26:
        raise FrameDecodeError("truncated", "BMP shorter than its headers")
    if int.from_bytes(data[14:18], "little") == 12:
        return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return width, abs(height)  # negative height: rows stored top-down


def _imdecode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameDecodeError("corrupt", "decoder rejected the data")
    return image


def _checked_jpeg(data: bytes, max_pixels: int) -> np.ndarray:
    # Some encoders and transports pad with zeros after EOI.
    if not data.rstrip(b"\x00").endswith(_EOI):
        raise FrameDecodeError("truncated", "missing JPEG EOI marker")
    check_jpeg(data, max_pixels)
    return _imdecode(data)


def decode_jpeg(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG bytes to a BGR uint8 image, refusing costly frames before decoding."""
    if not data:
        raise FrameDecodeError("empty", "no bytes")
    data = bytes(data)
    if not data.startswith(_SOI):
        raise FrameDecodeError("not_jpeg", "missing JPEG SOI marker")
    return _checked_jpeg(data, max_pixels)


def image_format(data: bytes) -> str | None:
    if data.startswith(_SOI):
        return "jpeg"
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_BMP):
        return "bmp"
    return None


def decode_image(data: bytes, max_pixels: int,
                 formats: tuple[str, ...] = ("jpeg", "png")) -> np.ndarray:
    """JPEG, PNG (or BMP) bytes to a BGR uint8 image, with the same limits before decoding.
    Other formats are refused: OpenCV reads many, and each would need its own header check."""
    if not data:
        raise FrameDecodeError("empty", "no bytes")
    data = bytes(data)
    kind = image_format(data)
    if kind is None or kind not in formats:
        raise FrameDecodeError("unsupported_format", f"not {' or '.join(formats)}")
    if kind == "jpeg":
        return _checked_jpeg(data, max_pixels)
    _check_pixels(*(png_size(data) if kind == "png" else bmp_size(data)), max_pixels)
    return _imdecode(data)
