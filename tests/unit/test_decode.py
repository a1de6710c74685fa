"""I-3: what decoding an untrusted image may cost is bounded from its headers, before decoding.

A progressive JPEG costs about pixels x scans to decode; PNG and BMP headers state their size.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.process import process_frames
from chalicelib.vision.decode import (
    MAX_SCANS,
    FrameDecodeError,
    check_jpeg,
    decode_jpeg,
)
from chalicelib.vision.decode import (
    decode_image as bounded_decode,
)
from chalicelib.vision.reference_image import ReferenceImageError, decode_reference
from tests.conftest import SHARED_DATA, jpeg_scans, progressive_jpeg
from tests.unit.test_index_and_process import ALICE, INDEX, FakePipeline, _frame

LIMIT = 3840 * 2160  # Settings.max_frame_pixels


def _reason(data: bytes, max_pixels: int = LIMIT) -> str:
    with pytest.raises(FrameDecodeError) as info:
        decode_jpeg(data, max_pixels)
    return info.value.reason


def test_a_4k_frame_repeating_one_scan_1500_times_is_refused_at_once() -> None:
    hostile = progressive_jpeg(3840, 2160, repeats=1500)
    assert len(hostile) < 150_000 and jpeg_scans(hostile) == 1510
    t0 = time.process_time()
    with pytest.raises(FrameDecodeError) as info:
        decode_jpeg(hostile, LIMIT)
    spent = time.process_time() - t0
    assert info.value.reason == "too_many_scans"
    assert "3840x2160" in str(info.value)
    # Decoding it takes seconds (~1500 x 0.5-5 ms here); the refusal reads headers only.
    assert spent < 0.1, f"refusing took {spent:.3f} CPU-s"


def test_scan_limit_is_64_and_fewer_on_big_frames() -> None:
    small = progressive_jpeg(64, 48, repeats=MAX_SCANS - 10)  # libjpeg's 10 + 54 = 64
    assert jpeg_scans(small) == MAX_SCANS
    assert decode_jpeg(small, LIMIT).shape == (48, 64, 3)
    assert _reason(progressive_jpeg(64, 48, repeats=MAX_SCANS - 9)) == "too_many_scans"
    # 20 scans: fine at 1080p (the budget allows 64 there), refused at 4K (16 there).
    twenty_hd = progressive_jpeg(1920, 1080, repeats=10)
    assert check_jpeg(twenty_hd, LIMIT).scans == 20
    assert decode_jpeg(twenty_hd, LIMIT).shape == (1080, 1920, 3)
    assert _reason(progressive_jpeg(3840, 2160, repeats=10)) == "too_many_scans"


def test_ordinary_jpegs_still_decode() -> None:
    # OpenCV baseline and progressive (libjpeg's script: 10 scans), at 4K too.
    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (5, 5), 0)
    for params, scans in (([], 1), ([cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 10)):
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85, *params])[1].tobytes()
        assert check_jpeg(data, LIMIT).scans == scans
        assert decode_jpeg(data, LIMIT).shape == (480, 640, 3)
    four_k = progressive_jpeg(3840, 2160)
    header = check_jpeg(four_k, LIMIT)
    assert (header.width, header.height, header.scans, header.progressive) == \
        (3840, 2160, 10, True)
    assert decode_jpeg(four_k, LIMIT).shape == (2160, 3840, 3)
    # Restart markers inside the entropy-coded data are not scans.
    with_rst = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])[1].tobytes()
    assert b"\xff\xd0" in with_rst and check_jpeg(with_rst, LIMIT).scans == 1


def test_pillow_progressive_and_an_exif_thumbnail_full_of_scan_markers() -> None:
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(5)
    rgb = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (5, 5), 0)
    buf = io.BytesIO()
    pil.fromarray(rgb).save(buf, "JPEG", progressive=True, optimize=True, quality=80)
    data = buf.getvalue()
    assert 1 < check_jpeg(data, LIMIT).scans <= 16
    assert decode_jpeg(data, LIMIT).shape == (300, 400, 3)
    # A camera's APP1 (EXIF) segment may carry a thumbnail, itself a JPEG with its scans: the
    # payload is skipped by its length, so its SOS markers are not the image's.
    thumb = progressive_jpeg(160, 120, repeats=100)
    payload = b"Exif\x00\x00" + thumb
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    with_thumb = data[:2] + app1 + data[2:]
    assert check_jpeg(with_thumb, LIMIT).scans == check_jpeg(data, LIMIT).scans
    assert decode_jpeg(with_thumb, LIMIT).shape == (300, 400, 3)


def test_real_photos_still_decode() -> None:
    folders = [SHARED_DATA / "crowds", SHARED_DATA / "video"]
    paths = sorted(p for f in folders if f.exists() for p in f.glob("*.jpg"))
    if not paths:
        pytest.skip(f"needs photos in {SHARED_DATA} (internal test data, absent here)")
    progressive = 0
    for p in paths:
        data = p.read_bytes()
        header = check_jpeg(data, LIMIT)
        assert header.scans == jpeg_scans(data), p.name
        progressive += header.progressive
        assert decode_jpeg(data, LIMIT).shape[:2] == (header.height, header.width), p.name
    assert progressive >= 3  # the folder holds progressive photos (5-14 scans)


def _png(width: int, height: int, row: bytes | None = None) -> bytes:
    """A valid 1-bit greyscale PNG: ~12 KB for 10,000 x 10,000 pixels, 300 MB decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))

    line = b"\x00" + (row or bytes((width + 7) // 8))
    raw = zlib.compress(line * height, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_png_and_bmp_sizes_are_checked_before_decoding() -> None:
    bomb = _png(10_000, 10_000)
    assert len(bomb) < 50_000
    t0 = time.process_time()
    with pytest.raises(FrameDecodeError) as info:
        bounded_decode(bomb, LIMIT)
    assert info.value.reason == "too_large" and time.process_time() - t0 < 0.05
    assert bounded_decode(_png(64, 48), LIMIT).shape == (48, 64, 3)
    bmp = cv2.imencode(".bmp", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    assert bounded_decode(bmp, LIMIT, ("jpeg", "png", "bmp")).shape == (48, 64, 3)
    big_bmp = bmp[:18] + struct.pack("<ii", 5000, -5000) + bmp[26:]  # top-down, 25 MP
    with pytest.raises(FrameDecodeError, match="5000x5000"):
        bounded_decode(big_bmp, LIMIT, ("jpeg", "png", "bmp"))
    with pytest.raises(FrameDecodeError) as info:
        bounded_decode(bmp, LIMIT)  # BMP only where asked for
    assert info.value.reason == "unsupported_format"
    with pytest.raises(FrameDecodeError) as info:
        bounded_decode(b"GIF89a" + bytes(40), LIMIT)
    assert info.value.reason == "unsupported_format"


def test_reference_images_are_bounded_too() -> None:
    with pytest.raises(ReferenceImageError, match="10000x10000"):
        decode_reference(_png(10_000, 10_000), 25_000_000)
    with pytest.raises(ReferenceImageError) as info:
        decode_reference(progressive_jpeg(1920, 1080, repeats=1500), 25_000_000)
    assert info.value.code == "too_many_scans"
    assert decode_reference(progressive_jpeg(160, 120), 25_000_000).shape == (120, 160, 3)


def test_a_refused_frame_is_skipped_with_its_reason_and_the_rest_decided() -> None:
    pipe = FakePipeline({1: [([0, 0, 9, 9], ALICE)]})
    hostile = Frame(0, "000000.jpg", datetime(2026, 11, 26, tzinfo=UTC),
                    progressive_jpeg(3840, 2160, repeats=1500))
    t0 = time.process_time()
    out = process_frames([hostile, _frame(1, 1)], pipe, INDEX, 0.5,  # type: ignore[arg-type]
                         LIMIT)
    assert time.process_time() - t0 < 1.0
    assert dict(out.frames_skipped) == {"too_many_scans": 1}
    assert out.frames_processed == 1
    assert [m.subject_id for m in out.matches] == ["alice"]
