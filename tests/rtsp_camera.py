"""A real RTSP camera for tests: a GStreamer RTSP server that a test starts, kills mid-stream
(a camera that drops), freezes (SIGSTOP: a camera that stalls with its connection open) and brings
back on the same URL.

Two halves in one file:

- run as a script by the system Python, which has GStreamer's RTSP server through PyGObject
  (Debian: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good
  gstreamer1.0-plugins-base; `make rtsp` installs them), it serves a video file at
  rtsp://127.0.0.1:PORT/cam and prints one line, "ready <url>", once it accepts clients:

      /usr/bin/python3 tests/rtsp_camera.py --port 8554 \
          --clip ../shared/data/video/short_hamilton_clip.mp4

- imported from the project's virtualenv (no GStreamer there), `RtspCamera` runs that script as a
  child process, and `rtsp_available()` says why a test must skip, or None.

The clip loops for as long as the server runs: its H.264 access units are read once with
`filesrc ! qtdemux` into memory, and each client's pipeline is
`( appsrc name=src ! rtph264pay name=pay0 pt=96 config-interval=1 )`, fed those access units
again and again with timestamps that keep increasing (loop n is shifted by n clip durations), so a
client sees one endless, real-time stream with no discontinuity (short_hamilton_clip.mp4: 275
frames at 29.97 fps, 9.18 s per loop, a key frame first). Media are not shared: every client,
including one reconnecting, gets a pipeline of its own that starts at the clip's first (key) frame.
Nothing is decoded or encoded: serving costs almost no CPU.
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "video" / "short_hamilton_clip.mp4"
# The Python that has PyGObject and GStreamer (Debian's), not the project's virtualenv.
SYSTEM_PYTHON = os.environ.get("LFR_RTSP_PYTHON", "/usr/bin/python3")
MOUNT = "/cam"
ELEMENTS = ("filesrc", "qtdemux", "appsink", "appsrc", "rtph264pay", "rtpjpegpay")
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    f"missing = [e for e in {ELEMENTS!r} if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing))"
)
_INSTALL = ("apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-base, or `make rtsp` as root")


@functools.cache
def rtsp_available(clip: Path | None = None, frames_only: bool = False) -> str | None:
    """Why an RTSP camera cannot run here (a skip reason), or None when it can. `frames_only`:
    for a camera serving a test's own JPEGs (RtspCamera(frames=...)), which needs no clip."""
    clip = Path(clip or CLIP)
    if not frames_only and not clip.is_file():
        return f"needs {clip} (internal test data in ../shared/data, absent here)"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} with GStreamer's RTSP server ({_INSTALL})"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} could not check for GStreamer's RTSP server: {exc}"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks GStreamer's RTSP server ({last}; {_INSTALL})"
    if probe.stdout.strip():
        return f"GStreamer lacks elements {probe.stdout.strip()} ({_INSTALL})"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspCamera:
    """One RTSP camera at a fixed URL, rtsp://127.0.0.1:PORT/cam, across restarts.

    start() runs the server and returns once it accepts clients (the seconds that took);
    stop() kills it (SIGKILL: the connection drops, as when a camera loses power);
    pause()/resume() freeze and thaw it (SIGSTOP/SIGCONT: the connection stays open but nothing
    arrives, as when a camera hangs); a `with` block starts it and stops it at the end.
    """

    def __init__(self, clip: Path | str | None = None, *, port: int | None = None,
                 ready_timeout_s: float = 20.0, python: str | None = None,
                 frames: Path | None = None, fps: float = 5.0) -> None:
        self.clip = Path(clip or CLIP)
        # A folder of JPEGs served as MJPEG at `fps` instead of the clip: scenes a test draws.
        self.frames, self.fps = frames, fps
        self.port = port or free_port()  # picked once: the URL survives stop()/start()
        self.ready_timeout_s = ready_timeout_s
        self.python = python or SYSTEM_PYTHON
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @property
    def running(self) -> bool:
        """The server process is alive (paused or not)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self.running and self._paused

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self) -> float:
        """Run the server; return the seconds until it accepted clients. Raises RuntimeError
        (with the server's stderr) if it exits or is not ready within ready_timeout_s."""
        if self.running:
            raise RuntimeError(f"camera at {self.url} already running")
        self._cleanup()
        began = time.monotonic()
        # The server's log, read back when it fails; a file, so that it can never block on it.
        self._stderr = tempfile.TemporaryFile(prefix="rtsp-camera-")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [self.python, str(Path(__file__).resolve()), "--port", str(self.port),
             "--clip", str(self.clip), "--exit-on-stdin-eof",
             *(["--frames", str(self.frames), "--fps", str(self.fps)] if self.frames else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True)  # a ^C in the terminal reaches the tests, not the camera
        self._paused = False
        try:
            self._wait_ready(began + self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd, seen = self._proc.stdout.fileno(), b""
        while b"\n" not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"RTSP camera not ready after {self.ready_timeout_s} s: "
                                   f"{self._stderr_text()}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:  # stdout closed: the server exited
                    code = self._proc.wait()
                    raise RuntimeError(f"RTSP camera exited ({code}) before it was ready: "
                                       f"{self._stderr_text()}")
                seen += chunk
        if not seen.startswith(b"ready"):
            raise RuntimeError(f"RTSP camera said {seen!r}, not ready: {self._stderr_text()}")

    def stop(self) -> None:
        """Kill the server (SIGKILL, paused or not) and reap it. Nothing if it is not running."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
        self._paused = False

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, no packet is sent."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running or self._proc is None:
            raise RuntimeError(f"camera at {self.url} is not running")
        self._proc.send_signal(sig)

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]

    def _cleanup(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        self.stop()
        self._cleanup()

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"RtspCamera({self.url}, {state})"


# --- The server: run by the system Python (PyGObject + GStreamer) ------------------------------


def _load_clip(gst, clip: Path):  # type: ignore[no-untyped-def]
    """The clip's caps, its access units (data, pts, dts, duration, delta) and its duration."""
    pipeline = gst.parse_launch(
        f'filesrc location="{clip}" ! qtdemux name=d '
        "d.video_0 ! video/x-h264 ! appsink name=sink sync=false")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(gst.State.PLAYING)
    caps, units = None, []
    while (sample := sink.emit("pull-sample")) is not None:
        buf = sample.get_buffer()
        caps = sample.get_caps()
        ok, info = buf.map(gst.MapFlags.READ)
        assert ok
        units.append((bytes(info.data), buf.pts, buf.dts, buf.duration,
                      buf.has_flags(gst.BufferFlags.DELTA_UNIT)))
        buf.unmap(info)
    pipeline.set_state(gst.State.NULL)
    if caps is None or not units:
        raise SystemExit(f"no H.264 video in {clip}")
    period = max((pts if pts != gst.CLOCK_TIME_NONE else dts) + dur
                 for _, pts, dts, dur, _ in units)
    return caps, units, period


def _load_frames(gst, folder: Path, fps: float):  # type: ignore[no-untyped-def]
    """A folder of JPEGs (name order) as MJPEG access units at `fps`: each frame is a key
    frame, so no decoding or encoding is needed either."""
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg files in {folder}")
    step = int(gst.SECOND / fps)
    first = files[0].read_bytes()
    sof = first.find(b"\xff\xc0")  # baseline start of frame: height, width follow
    if sof < 0:
        raise SystemExit(f"{files[0]} is not a baseline JPEG")
    height = int.from_bytes(first[sof + 5:sof + 7], "big")
    width = int.from_bytes(first[sof + 7:sof + 9], "big")
    caps = gst.Caps.from_string(f"image/jpeg,width={width},height={height},"
                                f"framerate={round(fps * 1000)}/1000")
    units = [(f.read_bytes(), i * step, i * step, step, False) for i, f in enumerate(files)]
    return caps, units, len(files) * step


def serve(port: int, clip: Path, exit_on_stdin_eof: bool = False,
          frames: Path | None = None, fps: float = 5.0) -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    caps, units, period = _load_frames(Gst, frames, fps) if frames else _load_clip(Gst, clip)
    pay = "rtpjpegpay" if frames else "rtph264pay config-interval=1"
    none = Gst.CLOCK_TIME_NONE

    def feed(appsrc, _length, state):  # type: ignore[no-untyped-def]
        data, pts, dts, duration, delta = units[state["i"]]
        shift = state["loop"] * period
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = pts + shift if pts != none else none
        buf.dts = dts + shift if dts != none else none
        buf.duration = duration
        if delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        appsrc.emit("push-buffer", buf)
        state["i"] += 1
        if state["i"] == len(units):
            state["i"], state["loop"] = 0, state["loop"] + 1

    def configure(_factory, media):  # type: ignore[no-untyped-def]
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", caps)
        appsrc.connect("need-data", feed, {"i": 0, "loop": 0})

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( appsrc name=src is-live=false format=time "
                       f"! {pay} name=pay0 pt=96 )")
    factory.set_shared(False)  # each client (a reconnecting one too) gets its own pipeline
    factory.connect("media-configure", configure)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(MOUNT, factory)
    loop = GLib.MainLoop()
    if not server.attach(None):  # 0: it could not listen (GStreamer logged why on stderr)
        print(f"cannot serve on 127.0.0.1:{port}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    if exit_on_stdin_eof:  # the test process is gone: so is its camera

        def on_stdin(fd, _cond):  # type: ignore[no-untyped-def]
            if not os.read(fd, 4096):
                loop.quit()
                return False
            return True

        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    print(f"ready rtsp://127.0.0.1:{port}{MOUNT} ({len(units)} frames, "
          f"{period / Gst.SECOND:.2f} s per loop)", flush=True)
    loop.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--clip", type=Path, default=CLIP, help="an MP4 (H.264) file")
    parser.add_argument("--frames", type=Path,
                        help="a folder of JPEGs (dimensions multiples of 8) served as MJPEG")
    parser.add_argument("--fps", type=float, default=5.0, help="the frame rate of --frames")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes (the parent process is gone)")
    args = parser.parse_args(argv)
    return serve(args.port, args.clip, args.exit_on_stdin_eof, args.frames, args.fps)


if __name__ == "__main__":
    sys.exit(main())
