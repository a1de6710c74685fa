"""A van's uplink for tests: an HTTP forward proxy (what HTTP_PROXY names) in front of the local
stack, which a test can take down, black-hole, slow down, make reset connections, or answer
503 (or 403 for uploads, as S3 answers an expired grant).

Written for the tests (stdlib sockets, one thread per connection, one request per connection):
a library proxy would need plugins for every fault, and this is the whole of it. Each request is
forwarded with `Connection: close`, so a fault applies from the next request on.

Modes:
- "up": forwarded.
- "down": the listening socket is closed: connections are refused (a dropped 4G link).
- "blackhole": accepted, read, never answered until the mode changes (a link that hangs).
- "reset": accepted, then reset (RST).
- "503": answered 503 Service Unavailable.
- "slow": forwarded after `delay_s`.
- "expire_grants": uploads (POSTs to the frames bucket) answered 403 "Policy expired", the rest
  forwarded.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter

MODES = ("up", "down", "blackhole", "reset", "503", "slow", "expire_grants")
_EXPIRED = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
            b"<Message>Invalid according to Policy: Policy expired.</Message></Error>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UplinkProxy:
    def __init__(self, delay_s: float = 1.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay_s = delay_s
        self.mode = "up"
        self.seen: Counter[str] = Counter()  # requests by what happened to them
        self._changed = threading.Condition()
        self._listener: socket.socket | None = None
        self._closed = False
        self._open()

    # -- control --------------------------------------------------------------------------
    def set(self, mode: str) -> None:
        assert mode in MODES, mode
        with self._changed:
            was, self.mode = self.mode, mode
            self._changed.notify_all()
        if mode == "down" and was != "down":
            self._shut()
        elif mode != "down" and was == "down":
            self._open()

    def close(self) -> None:
        self._closed = True
        self.set("up")
        self._shut()

    def __enter__(self) -> UplinkProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving --------------------------------------------------------------------------
    def _open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _shut(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed: the link is down
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                request = _read_request(conn)
            except (OSError, ValueError):
                return
            if request is None:
                return
            mode = self.mode
            self.seen[mode] += 1
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if mode == "blackhole":
                with self._changed:
                    self._changed.wait_for(lambda: self.mode != "blackhole" or self._closed, 120)
                return
            if mode == "503":
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            method, url, headers, body = request
            if mode == "expire_grants" and method == "POST" and "/grant" not in url \
                    and "/heartbeat" not in url:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_EXPIRED)
                             + _EXPIRED)
                return
            if mode == "slow":
                time.sleep(self.delay_s)
            with contextlib.suppress(OSError):
                conn.sendall(_forward(method, url, headers, body))


def _read_request(conn: socket.socket) -> tuple[str, str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, url, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
    while len(rest) < length:
        chunk = conn.recv(min(1 << 20, length - len(rest)))
        if not chunk:
            raise ValueError("request body cut short")
        rest += chunk
    return method, url, headers, rest


def _forward(method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
    u = urllib.parse.urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    keep = {k: v for k, v in headers.items()
            if k.lower() not in ("proxy-connection", "connection", "keep-alive")}
    upstream = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    try:
        upstream.request(method, path or "/", body=body, headers={**keep, "Connection": "close"})
        resp = upstream.getresponse()
        payload = resp.read()
        out = [f"HTTP/1.1 {resp.status} {resp.reason}"]
        out += [f"{k}: {v}" for k, v in resp.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length")]
        out += [f"Content-Length: {len(payload)}", "Connection: close"]
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload
    finally:
        upstream.close()
