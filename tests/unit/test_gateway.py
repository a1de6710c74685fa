"""The camera gateway's capture times and pacing (issue 10, item 6a): recorded footage keeps its
own clock however fast it is read, `realtime` paces sending to that clock, a video is sampled by
its container timestamps, and a live source is stamped when each frame is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from chalicelib import gateway
from chalicelib.gateway import GatewayOptions, run_gateway
from chalicelib.ingest.batch_format import BatchLimits, open_batch

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class FakeClock:
    """Time moves only when the gateway sleeps (or a fake camera delivers a frame)."""

    def __init__(self) -> None:
        self.t = 5000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.t += seconds

    def now(self) -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)


class Recorder:
    """An uploader that keeps what it was sent, and when by the gateway's clock, in sequence
    order (uploads run in several threads, so they may arrive out of order)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.got: list[tuple[int, datetime | None, list[datetime], list[int]]] = []

    def upload(self, key: str, body: bytes) -> None:
        manifest, frames = open_batch(body, BatchLimits())
        shades = []
        for f in frames:
            assert f.data is not None
            image = cv2.imdecode(np.frombuffer(f.data, np.uint8), cv2.IMREAD_GRAYSCALE)
            shades.append(_frame_no(image))
        at = self.clock.now() if self.clock else None
        self.got.append((manifest.sequence, at, [f.captured_at for f in manifest.frames],
                         shades))

    @property
    def batches(self) -> list[tuple[datetime | None, list[datetime], list[int]]]:
        return [(at, ts, ns) for _, at, ts, ns in sorted(self.got, key=lambda b: b[0])]

    @property
    def upload_times(self) -> list[datetime | None]:
        return [at for at, _, _ in self.batches]

    @property
    def times(self) -> list[datetime]:
        return [t for _, ts, _ in self.batches for t in ts]

    @property
    def frame_nos(self) -> list[int]:
        return [n for _, _, ns in self.batches for n in ns]


def _image(n: int) -> np.ndarray:
    """Frame n of a test source: its number is its shade of grey (survives JPEG)."""
    return np.full((48, 64, 3), 8 * n + 4, np.uint8)


def _frame_no(image: np.ndarray) -> int:
    return round((float(image.mean()) - 4) / 8)


def _folder(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:04d}.png"), _image(i))
    return folder


def _video(tmp_path: Path, n: int, fps: float) -> Path:
    path = tmp_path / f"clip-{fps:g}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(_image(i))
    writer.release()
    return path


def _offsets(times: list[datetime], start: datetime) -> list[float]:
    return [round((t - start).total_seconds(), 3) for t in times]


def test_a_folder_read_at_once_keeps_the_spacing_of_its_fps(tmp_path) -> None:
    # The reported defect: 392 s of footage stamped with the 40 s it took to read.
    folder = _folder(tmp_path, 20)
    sent = Recorder()
    report = run_gateway(str(folder), sent, "dep-1", "cam-1",
                         GatewayOptions(fps=2, batch_frames=8, start=START))
    assert report.frames_sent == 20 and sent.frame_nos == list(range(20))
    # Frame i at start + i/fps: 20 frames at 2 fps span 10 s (9.5 s first to last), though
    # they were read in milliseconds.
    assert _offsets(sent.times, START) == [i / 2 for i in range(20)]


def test_a_folder_without_a_start_is_stamped_from_when_it_was_opened(tmp_path) -> None:
    clock = FakeClock()
    opened = clock.now()
    sent = Recorder(clock)
    run_gateway(str(_folder(tmp_path, 5)), sent, "dep-1", "cam-1", GatewayOptions(fps=4),
                clock=clock)
    assert _offsets(sent.times, opened) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert clock.sleeps == []  # not realtime: nothing waits


def test_an_unreadable_image_keeps_its_time_slot(tmp_path) -> None:
    folder = _folder(tmp_path, 4)
    (folder / "0001.png").write_bytes(b"not an image")
    sent = Recorder()
    run_gateway(str(folder), sent, "dep-1", "cam-1", GatewayOptions(fps=10, start=START))
    assert sent.frame_nos == [0, 2, 3]
    assert _offsets(sent.times, START) == [0.0, 0.2, 0.3]


def test_realtime_paces_a_folder_to_its_capture_clock(tmp_path) -> None:
    clock = FakeClock()
    t0 = clock.now()
    sent = Recorder(clock)
    report = run_gateway(str(_folder(tmp_path, 6)), sent, "dep-1", "cam-1",
                         GatewayOptions(fps=5, batch_frames=1, realtime=True, start=START),
                         clock=clock)
    # Frame i is sealed for the uplink no earlier than i/fps after the start (uploads run in
    # their own threads, after the seal), and is stamped start + i/fps.
    assert _offsets([b.sealed_at for b in report.sent], t0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert all(at >= b.sealed_at for b, at in zip(report.sent, sent.upload_times, strict=True))
    assert _offsets(sent.times, START) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert sum(clock.sleeps) == pytest.approx(1.0)


def test_realtime_batches_are_sealed_by_the_age_of_their_first_frame(tmp_path) -> None:
    clock = FakeClock()
    sent = Recorder(clock)
    run_gateway(str(_folder(tmp_path, 9)), sent, "dep-1", "cam-1",
                GatewayOptions(fps=5, batch_frames=8, realtime=True, start=START), clock=clock)
    # At 5 fps a first frame is 0.4 s old when the third is taken: batches of 3, not of 8.
    assert [len(ts) for _, ts, _ in sent.batches] == [3, 3, 3]


def test_a_video_is_sampled_and_stamped_by_its_own_timestamps(tmp_path) -> None:
    clip = _video(tmp_path, 20, fps=10)
    sent = Recorder()
    run_gateway(str(clip), sent, "dep-1", "cam-1", GatewayOptions(fps=5, start=START))
    assert sent.frame_nos == list(range(0, 20, 2))  # every other frame of a 10 fps video
    assert _offsets(sent.times, START) == [i / 5 for i in range(10)]


def test_a_video_slower_than_fps_keeps_its_own_frame_times(tmp_path) -> None:
    clip = _video(tmp_path, 6, fps=2)
    sent = Recorder()
    run_gateway(str(clip), sent, "dep-1", "cam-1", GatewayOptions(fps=5, start=START))
    assert sent.frame_nos == list(range(6))
    assert _offsets(sent.times, START) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]  # not 0.2 s apart


def test_realtime_paces_a_video_to_its_timestamps(tmp_path) -> None:
    clock = FakeClock()
    t0 = clock.now()
    sent = Recorder(clock)
    report = run_gateway(str(_video(tmp_path, 8, fps=4)), sent, "dep-1", "cam-1",
                         GatewayOptions(fps=4, batch_frames=1, realtime=True, start=START),
                         clock=clock)
    assert _offsets([b.sealed_at for b in report.sent], t0) == [i / 4 for i in range(8)]
    assert sum(clock.sleeps) == pytest.approx(7 / 4)


class FakeCamera:
    """A 30 fps camera: each read returns the next frame, 1/30 s later by the clock."""

    def __init__(self, clock: FakeClock, n: int) -> None:
        self.clock, self.n, self.i = clock, n, 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.i >= self.n:
            return False, None
        if self.i:
            self.clock.t += 1 / 30
        self.i += 1
        return True, _image((self.i - 1) % 30)

    def get(self, prop: int) -> float:
        return 30.0

    def release(self) -> None:
        pass


def test_a_live_source_is_stamped_when_read_and_thinned_to_fps() -> None:
    clock = FakeClock()
    camera = FakeCamera(clock, 60)  # two seconds of a 30 fps camera
    opened = clock.now()
    sent = Recorder(clock)
    run_gateway("rtsp://camera.invalid/stream", sent, "dep-1", "cam-1",
                GatewayOptions(fps=5, batch_frames=8, start=START, max_reconnects=0),
                clock=clock, opener=lambda source, read_timeout_s: camera)
    # Every 6th frame, stamped with the clock when it was read (`start` is for recorded footage).
    assert sent.frame_nos == [0, 6, 12, 18, 24, 0, 6, 12, 18, 24]
    assert _offsets(sent.times, opened) == [round(i * 0.2, 3) for i in range(10)]
    assert clock.sleeps == []  # a camera paces itself


def test_options_refuse_what_cannot_be_a_clock() -> None:
    with pytest.raises(ValueError, match="fps"):
        GatewayOptions(fps=0)
    with pytest.raises(ValueError, match="time zone"):
        GatewayOptions(start=datetime(2026, 11, 26, 10, 0))


def test_the_batch_path_stamps_video_by_its_own_timestamps_too(tmp_path) -> None:
    # `lfr batch` samples archived footage as the gateway does; a 2 fps video asked for 5 fps
    # was stamped 0.2 s apart, 2.5x too fast a clock for tracking and the re-alert window.
    from chalicelib.batch.run import BatchOptions, iter_timed_jpegs

    clip = _video(tmp_path, 6, fps=2)
    offsets = [t for t, _ in iter_timed_jpegs(str(clip), "video", BatchOptions(fps=5))]
    assert offsets == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


class FakeVideo:
    """A capture whose container timestamps start at 1.4 s and, once, repeat (no timestamp)."""

    def __init__(self, stamps_ms: list[float]) -> None:
        self.stamps, self.i = stamps_ms, -1

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.i += 1
        return (True, _image(self.i)) if self.i < len(self.stamps) else (False, None)

    def get(self, prop: int) -> float:
        return 10.0 if prop == cv2.CAP_PROP_FPS else self.stamps[self.i]

    def release(self) -> None:
        pass


def test_video_offsets_count_from_the_first_frame() -> None:
    stamps = [1400.0, 1500.0, 1600.0, 1600.0, 1800.0]
    got = [round(t, 3) for t, _ in gateway.video_frames(FakeVideo(stamps), fps=10)]
    assert got == [0.0, 0.1, 0.2, 0.3, 0.4]
