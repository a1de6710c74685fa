"""One local stack in this process: moto server (or a given endpoint), every resource, the
Chalice app and an event pump bound to it. Used by the demo, the benchmark and the tests."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.local import moto_server


@dataclass
class LocalSession:
    endpoint: str
    settings: Any
    rt: Any
    app: Any
    pump: Any


@contextmanager
def local_session(
    stage: str,
    endpoint: str | None = None,
    log_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[LocalSession]:
    server = None
    if endpoint:
        moto_server.wait_ready(endpoint)
        env = {**moto_server.LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint}
    else:
        server = moto_server.start(log_path=log_path)
        env = server.env()
    # The local stack verifies its own tokens and signs alert links with per-run secrets.
    env.update({"LFR_STAGE": stage, "POWERTOOLS_METRICS_DISABLED": "true",
                "LFR_LOCAL_AUTH_SECRET": secrets.token_hex(16),
                "LFR_LINK_SECRET": secrets.token_hex(16), **(extra_env or {})})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from chalicelib import clients, names, runtime
        from chalicelib.local import resources
        from chalicelib.local.pump import EventPump, app_mappings, load_app

        # Settings and clients are cached per process: start from the new environment.
        clients.reset()
        names.reset()
        runtime.settings.cache_clear()
        runtime.runtime.cache_clear()
        rt = runtime.runtime()
        resources.create_all(rt.settings)
        app = load_app()
        pump = EventPump(rt.settings, app_mappings(app, rt.settings))
        yield LocalSession(env["AWS_ENDPOINT_URL"], rt.settings, rt, app, pump)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if server:
            moto_server.stop(server)


def wait_idle(rt: Any, timeout: float = 180.0) -> None:
    """Until both queues are empty and stay so (the pump runs in its own thread)."""
    sqs = rt.client("sqs")
    urls = [rt.queue_url(rt.settings.frames_queue), rt.queue_url(rt.settings.alerts_queue)]
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = 0
        for url in urls:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
            busy += sum(int(v) for v in a["Attributes"].values())
        quiet = quiet + 1 if busy == 0 else 0
        time.sleep(0.5)
