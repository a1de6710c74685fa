"""moto server, as its `moto_server` command runs it, plus one read-only route: the pushes SNS
delivered to platform endpoints (phones), all of them or those named by `arn` parameters.

moto keeps those messages but shows them only in /moto-api/data.json, a dump of every model of
every service, whose cost grows with all the state a long run (the test suite) leaves behind.
This route reads the platform endpoints alone (a dict per region), so it costs the same on
the last test as on the first. It mirrors LocalStack's /_aws/sns/platform-endpoint-messages.
Written here because moto has no such query; it reads only moto's documented in-process
backend (`sns_backends`).

Run: python -m chalicelib.local.moto_app -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

PUSHES_PATH = "/lfr-local/sns/platform-endpoint-messages"


def endpoint_messages(arns: Iterable[str] | None) -> list[dict[str, Any]]:
    """What moto holds for each platform endpoint ARN (unknown ones are left out), or for every
    endpoint (None). Reads only backends that exist: looking must not create one."""
    from moto.sns.models import sns_backends

    endpoints = {}
    for account in list(sns_backends.values()):
        for backend in list(account.values()):
            endpoints.update(backend.platform_endpoints)
    out = []
    for arn in endpoints if arns is None else arns:
        if (ep := endpoints.get(arn)) is None:
            continue
        out.append({"arn": arn, "custom_user_data": ep.custom_user_data,
                    "attributes": {k: v for k, v in ep.attributes.items()
                                   if isinstance(v, str | bool | int)},
                    "messages": dict(list(ep.messages.items()))})
    return out


class WithPushes:
    """WSGI middleware: PUSHES_PATH here, everything else to moto."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != PUSHES_PATH:
            return self.app(environ, start_response)
        from werkzeug.wrappers import Request, Response

        args = Request(environ).args
        arns = args.getlist("arn") if "arn" in args else None
        body = json.dumps({"endpoints": endpoint_messages(arns)})
        return Response(body, content_type="application/json")(environ, start_response)


def main(argv: list[str] | None = None) -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server sets it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # moto lists its package folder on disk for every request to find the backend of a host
    # (about a tenth of the server's CPU in the test suite); the folder does not change.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, WithPushes(app), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
