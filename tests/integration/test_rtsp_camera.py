"""The test camera (tests/rtsp_camera.py) is a real RTSP camera: OpenCV's FFmpeg backend, as a
gateway uses it, reads real frames from it, sees the stream end when the camera is killed, and
reads again from the same URL once it is back. Skips, saying why, without GStreamer's RTSP server
for /usr/bin/python3 (`make rtsp`) or without ../shared/data."""

from __future__ import annotations

import resource
import time

import cv2
import pytest

from tests.rtsp_camera import RtspCamera, rtsp_available

# Open gives up after 5 s and a read after 3 s, not OpenCV's 30 s.
TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 3000]
FRAMES = 15  # half a second of video


def _cpu() -> tuple[float, float]:
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _open(url: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, TIMEOUTS)
    assert cap.isOpened(), f"could not open {url}"
    return cap


def _read_frames(cap: cv2.VideoCapture, n: int) -> None:
    for i in range(n):
        ok, frame = cap.read()
        assert ok, f"read {i} of {n} failed"
        assert frame.shape == (360, 640, 3)
        assert frame.std() > 10  # real footage, not a blank frame


def test_camera_drops_and_comes_back(report) -> None:  # type: ignore[no-untyped-def]
    if reason := rtsp_available():
        pytest.skip(reason)
    cpu0 = _cpu()
    with RtspCamera() as cam:
        began = time.monotonic()
        cap = _open(cam.url)
        _read_frames(cap, FRAMES)
        first = time.monotonic() - began

        cam.stop()  # the camera drops mid-stream
        dropped, buffered = time.monotonic(), 0
        while cap.read()[0]:  # what FFmpeg had buffered, then the end
            buffered += 1
            assert buffered < 300, "frames kept coming from a dead camera"
        noticed = time.monotonic() - dropped
        cap.release()

        ready = cam.start()  # back, on the same URL
        began = time.monotonic()
        cap = _open(cam.url)
        _read_frames(cap, FRAMES)
        again = time.monotonic() - began
        cap.release()
    me, server = (b - a for a, b in zip(cpu0, _cpu(), strict=True))
    report(f"server ready {ready:.2f} s; open + {FRAMES} frames {first:.2f} s, after the restart "
           f"{again:.2f} s; drop noticed in {noticed:.2f} s ({buffered} buffered frames); CPU "
           f"{me:.2f} s here + {server:.2f} s server")
