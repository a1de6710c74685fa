"""One local stack in this process: moto server (or a given endpoint), every resource, the
Chalice app and an event pump bound to it. Used by the demo, the benchmark and the tests.

backend "localstack": LocalStack in host mode for every service it serves and moto server for
DynamoDB and Cognito, through per-service endpoints (chalicelib/local/localstack.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from chalicelib.local import moto_server

Backend = Literal["moto", "localstack"]
BACKENDS: tuple[Backend, ...] = ("moto", "localstack")
# LocalStack delivers an S3 notification after the upload has returned: an empty queue is
# believed once it has stayed so this long.
LOCALSTACK_SETTLE_S = 1.0


@dataclass
class LocalSession:
    endpoint: str  # AWS_ENDPOINT_URL: where S3, SQS and SNS are (pushes are read from there)
    settings: Any
    rt: Any
    app: Any
    pump: Any
    backend: Backend = "moto"
    own_server: bool = False  # the moto server was started for this session alone

    @property
    def resettable(self) -> bool:
        """Only a moto server of this session's own, holding every service, may be emptied:
        another's may hold other runs' state (LFR_TEST_ENDPOINT, `lfr local up`)."""
        return self.own_server and self.backend == "moto"

    def reset(self) -> None:
        """Empty the local AWS and create every resource again: clean state for a test module
        or scenario, whose cost does not grow with what ran before."""
        if not self.resettable:
            raise RuntimeError("reset: not a moto server of this session's own")
        from chalicelib import names
        from chalicelib.local import resources

        moto_server.reset(self.endpoint)
        names.reset()  # resolved queue URLs and ARNs; the same names come back
        resources.create_all(self.settings)


@contextmanager
def local_session(
    stage: str,
    endpoint: str | None = None,
    log_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
    backend: Backend = "moto",
    localstack_endpoint: str | None = None,
) -> Iterator[LocalSession]:
    """`endpoint`: a moto server already up; `localstack_endpoint`: a LocalStack already up
    (backend "localstack"). What is not given is started here and stopped at the end.

    The session's environment is this process's while it lasts (and restored after): the app
    it loads reads its settings from there, as on Lambda."""
    with _servers(endpoint, log_path, backend, localstack_endpoint) as (server, env):
        # The local stack verifies its own tokens and signs alert links with per-run secrets.
        env.update({"LFR_STAGE": stage, "POWERTOOLS_METRICS_DISABLED": "true",
                    "LFR_LOCAL_AUTH_SECRET": secrets.token_hex(16),
                    "LFR_LINK_SECRET": secrets.token_hex(16), **(extra_env or {})})
        # Per-service endpoints of the caller's environment would override this stack's.
        env.update({k: "" for k in os.environ
                    if k.startswith("AWS_ENDPOINT_URL_") and k not in env})
        with _environ(env):
            rt, app, pump = _bind_app(settle_s=LOCALSTACK_SETTLE_S if backend == "localstack"
                                      else 0.0)
            yield LocalSession(env["AWS_ENDPOINT_URL"], rt.settings, rt, app, pump, backend,
                               own_server=server is not None)


@contextmanager
def _servers(endpoint: str | None, log_path: Path | None, backend: Backend,
             localstack_endpoint: str | None) -> Iterator[tuple[Any, dict[str, str]]]:
    """The servers given, or started here (and stopped at the end): moto server's own process
    (None where one was given) and the AWS environment that points at them."""
    from chalicelib.local import localstack

    server, ls_server = None, None
    if endpoint:
        moto_server.wait_ready(endpoint)
    else:
        server = moto_server.start(log_path=log_path)
        endpoint = server.endpoint
    try:
        env = {**moto_server.LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint}
        if backend == "localstack":
            if localstack_endpoint:
                localstack.wait_ready(localstack_endpoint)
            else:
                ls_log = log_path.with_name("localstack.log") if log_path else None
                ls_server = localstack.start(log_path=ls_log)
                localstack_endpoint = ls_server.endpoint
            env = localstack.mixed_env(localstack_endpoint, endpoint)
        yield server, env
    finally:
        if ls_server:
            localstack.stop(ls_server)
        if server:
            moto_server.stop(server)


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ with `env` over it, as it was again at the end."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _bind_app(settle_s: float) -> tuple[Any, Any, Any]:
    """The runtime, the Chalice app and an event pump, from the environment as it is now, with
    every resource created."""
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
    return rt, app, EventPump(rt.settings, app_mappings(app, rt.settings), settle_s=settle_s)
