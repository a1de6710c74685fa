"""A Lambda stand-in in processes of their own, for the fault-injection suite.

A zygote process loads the app and the models once, then forks one function process for each
connection to its Unix socket: a warm container, made in milliseconds. A case that SIGKILLs one
goes on with a new fork instead of a new interpreter that imports and loads everything again
(about 1 CPU-second each, 32 kill cases). A function process serves invocations read as JSON
lines on its connection, each with the fault to strike (if any). The zygote's stdin takes
{"wait": PID} and answers how that process ended, so the test can check a kill was a kill.

`fail` raises an ordinary error at the step (the handler's own error paths run); `crash`
raises one that no `except Exception` catches (the invocation dies in-process, as on a Lambda
timeout); `kill` sends this process SIGKILL at the step. Answers, one JSON line each:
{"response": ..., "fired": bool} or {"crashed": true, "fired": bool}.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.faults.steps import BY_NAME, Step


class Crash(BaseException):
    """Not an Exception: no handler in the product catches it."""


class Armed:
    def __init__(self) -> None:
        self.step: Step | None = None
        self.when, self.kind, self.fired = "", "", False

    def arm(self, fault: dict[str, str] | None) -> None:
        self.step = BY_NAME[fault["step"]] if fault else None
        self.when, self.kind = (fault["when"], fault["kind"]) if fault else ("", "")
        self.fired = False

    def strike(self, service: str, operation: str, params: dict[str, Any], when: str) -> None:
        s = self.step
        if s is None or self.fired or when != self.when or (s.service, s.operation) != (
                service, operation) or not s.matches(params):
            return
        self.fired = True
        if self.kind == "kill":
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kind == "crash":
            raise Crash(s.name)
        if service == "vision":
            raise RuntimeError(f"injected failure at {s.name}")
        raise ClientError({"Error": {"Code": "ServiceUnavailable",
                                     "Message": f"injected failure at {s.name}"}}, operation)


ARMED = Armed()


def _install() -> None:
    original = BaseClient._make_api_call

    def hooked(self: Any, operation: str, params: dict[str, Any]) -> Any:
        service = self.meta.service_model.service_name
        ARMED.strike(service, operation, params, "before")
        result = original(self, operation, params)
        ARMED.strike(service, operation, params, "after")
        return result

    BaseClient._make_api_call = hooked  # type: ignore[method-assign]

    from chalicelib.ingest import process
    from chalicelib.vision.pipeline import FacePipeline

    decode, detect = process.decode_jpeg, FacePipeline.detect

    def decode_jpeg(*a: Any, **k: Any) -> Any:
        ARMED.strike("vision", "decode_jpeg", {}, "before")
        return decode(*a, **k)

    def detect_hooked(self: Any, *a: Any, **k: Any) -> Any:
        ARMED.strike("vision", "detect", {}, "before")
        return detect(self, *a, **k)

    process.decode_jpeg = decode_jpeg  # type: ignore[assignment]
    FacePipeline.detect = detect_hooked  # type: ignore[method-assign]


def _load() -> tuple[Any, int]:
    """The app and a warm container's state: the models loaded, the functions' modules imported
    and their clients made, as after a first invocation."""
    from chalicelib.local.pump import load_app
    from chalicelib.runtime import runtime
    from chalicelib.store.tables import connection_of

    _install()
    app = load_app()
    rt = runtime()
    rt.pipeline  # noqa: B018 - loaded before the fork: every function process has them
    # And what the API's cases go through, what the queue functions import on their first call
    # (app.py's handlers), and the clients (boto3's, each table's pynamodb one, the
    # transactions'): made, not connected, so that the forks share no socket. Otherwise every
    # fork after a killed one imported and made them again: ~0.5 CPU-s per kill case.
    import chalice.local  # noqa: F401

    import chalicelib.alerts.handler  # noqa: F401
    import chalicelib.api  # noqa: F401
    import chalicelib.ingest.worker  # noqa: F401

    for service in ("s3", "sqs", "sns", "dynamodb", "cloudwatch", "secretsmanager"):
        rt.client(service)
    for model in rt.tables.all():
        model._get_connection().connection.client  # noqa: B018
    connection_of(rt.tables.Alert).client  # noqa: B018
    return app, int(os.environ.get("LFR_FAULT_TIMEOUT_MS", "2000"))


def serve(app: Any, timeout_ms: int, rfile: Any, wfile: Any, mark: str) -> None:
    from chalicelib.local.pump import LambdaContext

    for line in rfile:
        req = json.loads(line)
        ARMED.arm(req.get("fault"))
        try:
            if req["function"] == "api":  # {method, path, headers}: through API Gateway's part
                out: dict[str, Any] = {"response": _http(app, req["event"])}
            else:
                out = {"response": app.handler_map[req["function"]](req["event"], LambdaContext(
                    req["function"], timeout_ms=timeout_ms))}
        except Crash:
            out = {"crashed": True}
        except Exception as exc:  # the handler as a whole failed: Lambda retries the batch
            out = {"error": f"{type(exc).__name__}: {exc}"}
        out["fired"] = ARMED.fired
        wfile.write(mark + json.dumps(out, default=str) + "\n")
        wfile.flush()


def _http(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One REST request through chalice's local gateway (routing, the Lambda proxy event)."""
    from chalice.config import Config
    from chalice.local import LocalGateway

    resp = LocalGateway(app, Config()).handle_request(
        method=request["method"], path=request["path"], headers=request.get("headers", {}),
        body=request.get("body", "").encode())
    body = resp["body"]
    return {"status": resp["statusCode"],
            "body": body.decode() if isinstance(body, bytes) else body}


def _function_process(app: Any, timeout_ms: int, conn: socket.socket, mark: str) -> None:
    """In the forked child: serve one connection until the test closes it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # the zygote's pipes are the zygote's; the functions' logs go nowhere
        os.dup2(devnull, fd)
    with conn, conn.makefile("r") as rfile, conn.makefile("w") as wfile:
        wfile.write(mark + json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
        wfile.flush()
        serve(app, timeout_ms, rfile, wfile, mark)


def zygote(path: str) -> None:
    app, timeout_ms = _load()
    mark = os.environ.get("LFR_FAULT_MARK", "@@lfr-invoker@@ ")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print(mark + json.dumps({"ready": True}), flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                sys.stdout.flush()
                if os.fork() == 0:
                    code = 1
                    try:
                        listener.close()
                        _function_process(app, timeout_ms, conn, mark)
                        code = 0
                    finally:
                        os._exit(code)  # never back into the zygote's loop
                conn.close()
                continue
            line = sys.stdin.readline()
            if not line:  # the test is done: wait for the function processes it left
                listener.close()
                with contextlib.suppress(ChildProcessError):
                    while True:
                        os.wait()
                return
            pid = json.loads(line)["wait"]
            _, status = os.waitpid(pid, 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(mark + json.dumps({"exited": pid, "returncode": code}), flush=True)


if __name__ == "__main__":
    zygote(sys.argv[1])
