"""The app's API over real HTTP in this process (chalice.local's dev server in a thread), for
clients that must cross a network: camera gateways behind an uplink proxy.

Requests are served one at a time: Chalice keeps `app.current_request` in one attribute of the
app, so two requests at once would read each other's. Each response closes its connection
(HTTP/1.0), so one client's keep-alive never holds the server from another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, ThreadedHTTPServer


class _OneAtATime(ChaliceRequestHandler):
    protocol_version = "HTTP/1.0"
    _lock = threading.Lock()

    def handle_one_request(self) -> None:
        with self._lock:
            super().handle_one_request()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: a heartbeat a second would drown everything else."""


@contextmanager
def serve_api(app: Any) -> Iterator[str]:
    """Serves `app` on a free loopback port; yields its base URL."""
    server = LocalDevServer(app, Config(chalice_stage="local"), "127.0.0.1", 0,
                            handler_cls=_OneAtATime, server_cls=ThreadedHTTPServer)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def main() -> None:
    """`python -m tests.integration.http_api`: the app's API in a process of its own, with the
    settings of its environment (LFR_GRANT_TTL_S ...). Prints "ready <url>", serves until its
    stdin closes (the test that started it is gone or done)."""
    import sys

    from app import app

    with serve_api(app) as url:
        print(f"ready {url}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
