"""Start and stop moto server on loopback: the local AWS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-2",
    "AWS_REGION": "eu-west-2",
}
# The same keys as Settings.credentials, for clients that are handed them (local/state.py).
CREDENTIALS = tuple(LOCAL_ENV[k] for k in
                    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoServer:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**LOCAL_ENV, "AWS_ENDPOINT_URL": self.endpoint}


def _moto_command() -> list[str]:
    """moto server with a route that reads pushes at a cost that does not grow (moto_app.py)."""
    return [sys.executable, "-m", "chalicelib.local.moto_app"]


def wait_ready(endpoint: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server at {endpoint} did not come up") from None
            time.sleep(0.1)


def reset(endpoint: str) -> None:
    """Every service's state dropped (moto's /moto-api/reset)."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def start(port: int | None = None, log_path: Path | None = None) -> MotoServer:
    port = port or free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **LOCAL_ENV},
        start_new_session=True,
    )
    server = MotoServer(port, proc)
    try:
        wait_ready(server.endpoint)
    except RuntimeError:
        proc.kill()
        raise
    return server


def stop(server: MotoServer) -> None:
    if server.process and server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
