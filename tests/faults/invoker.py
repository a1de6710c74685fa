"""A Lambda stand-in in its own process, for the fault-injection suite: it loads the app once,
then serves invocations read as JSON lines on stdin, each with the fault to strike (if any).

`fail` raises an ordinary error at the step (the handler's own error paths run); `crash`
raises one that no `except Exception` catches (the invocation dies in-process, as on a Lambda
timeout); `kill` sends this process SIGKILL at the step. Answers, one JSON line each:
{"response": ..., "fired": bool} or {"crashed": true, "fired": bool}.
"""

from __future__ import annotations

import json
import os
import signal
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


def main() -> None:
    from chalicelib.local.pump import LambdaContext, load_app
    from chalicelib.runtime import runtime

    _install()
    app = load_app()
    runtime().pipeline  # noqa: B018 - models loaded before the first invocation, as on a warm start
    timeout_ms = int(os.environ.get("LFR_FAULT_TIMEOUT_MS", "2000"))
    mark = os.environ.get("LFR_FAULT_MARK", "@@lfr-invoker@@ ")
    print(mark + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        ARMED.arm(req.get("fault"))
        handler = app.handler_map[req["function"]]
        try:
            out: dict[str, Any] = {"response": handler(req["event"], LambdaContext(
                req["function"], timeout_ms=timeout_ms))}
        except Crash:
            out = {"crashed": True}
        except Exception as exc:  # the handler as a whole failed: Lambda retries the batch
            out = {"error": f"{type(exc).__name__}: {exc}"}
        out["fired"] = ARMED.fired
        print(mark + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
