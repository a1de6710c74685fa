"""`lfr local up|down|pump` and `lfr token`: the local AWS stack and tokens for its API. The
add_* functions register them; chalicelib/cli.py places them in the `lfr` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from typing import Any

from chalicelib.local.state import STATE, local_settings, stack_settings


def cmd_local_up(args: argparse.Namespace) -> int:
    from chalicelib.local import moto_server, resources

    if STATE.exists():
        print(f"a local stack is already up ({STATE}); run `lfr local down` first")
        return 1
    STATE.parent.mkdir(exist_ok=True)
    server = moto_server.start(args.port, log_path=STATE.parent / "moto.log")
    ls_server = None
    if args.backend == "localstack":
        ls_server = _start_localstack(args.localstack_port, server)
        if ls_server is None:
            return 2
    # The local API verifies its own tokens (`lfr token`) and signs alert links: per-stack secrets.
    env = {**_aws_env(server, ls_server), "LFR_STAGE": args.stage,
           "LFR_LOCAL_AUTH_SECRET": secrets.token_hex(16), "LFR_LINK_SECRET": secrets.token_hex(16)}
    resources.create_all(stack_settings({**os.environ, **env}))
    pump = _start_pump({**os.environ, **env})
    keep = [k for k in env if k.startswith("AWS_ENDPOINT_URL")] + [
        "LFR_STAGE", "LFR_LOCAL_AUTH_SECRET", "LFR_LINK_SECRET"]
    state = {"env": {k: env[k] for k in keep}, "backend": args.backend,
             "moto_pid": server.process.pid if server.process else None, "pump_pid": pump.pid,
             "localstack_pid": ls_server.process.pid if ls_server and ls_server.process else None}
    STATE.write_text(json.dumps(state, indent=2))
    where = f"moto server {server.endpoint}"
    if ls_server:
        where = f"LocalStack {ls_server.endpoint} (DynamoDB, Cognito: {where})"
    print(f"local stack up: {where}, stage {args.stage}, "
          f"event pump pid {pump.pid} (logs in {STATE.parent}/)")
    print("use it from a shell (e.g. `.venv/bin/chalice local --stage local` for the API and "
          "the console at /console) with:")
    for k, v in {**moto_server.LOCAL_ENV, **state["env"]}.items():
        print(f"  export {k}={v}")
    return 0


def _start_localstack(port: int, server: Any) -> Any:
    """LocalStack for every service it serves (DynamoDB and Cognito stay on moto server); None,
    with moto server stopped and the reason printed, where it does not start."""
    from chalicelib.local import localstack, moto_server

    try:
        return localstack.start(port, log_path=STATE.parent / "localstack.log",
                                root=STATE.parent / "localstack")
    except (localstack.LocalStackUnavailable, RuntimeError) as exc:
        moto_server.stop(server)
        print(f"LocalStack did not start: {exc}", file=sys.stderr)
        return None


def _aws_env(server: Any, ls_server: Any) -> dict[str, str]:
    from chalicelib.local import localstack

    if ls_server is None:
        return server.env()
    return localstack.mixed_env(ls_server.endpoint, server.endpoint)


def _start_pump(env: dict[str, str]) -> Any:
    """`lfr local pump` in a session of its own (it outlives `local up`), given the stack's
    environment explicitly."""
    import subprocess

    pump_log = open(STATE.parent / "pump.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "local", "pump"],
        env=env,
        stdout=pump_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def cmd_token(args: argparse.Namespace) -> int:
    """A signed token for the local API (on AWS, Cognito issues them)."""
    from chalicelib.auth import issue_local_token

    s = local_settings()
    if not s.local_auth_secret:
        print("no LFR_LOCAL_AUTH_SECRET: tokens are for the local stack only", file=sys.stderr)
        return 2
    print(issue_local_token(s.local_auth_secret, args.sub, args.role, args.deployment or (),
                            args.camera, ttl_s=args.ttl))
    return 0


def cmd_local_down(args: argparse.Namespace) -> int:
    if not STATE.exists():
        print("no local stack is up")
        return 0
    state = json.loads(STATE.read_text())
    for key in ("pump_pid", "localstack_pid", "moto_pid"):
        pid = state.get(key)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    STATE.unlink()
    print("local stack down")
    return 0


def cmd_local_pump(args: argparse.Namespace) -> int:
    import logging

    from chalicelib.local.pump import EventPump, app_mappings, load_app

    logging.basicConfig(level=logging.INFO)
    settings = local_settings()
    pump = EventPump(settings, app_mappings(load_app(), settings))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"event pump delivering {settings.frames_queue} and {settings.alerts_queue}", flush=True)
    pump.start()  # one thread per queue: alerts are pushed while frames are being processed
    try:
        while True:
            time.sleep(3600)
    finally:
        pump.stop()


def add_local(sub: Any) -> None:
    from chalicelib.local.session import BACKENDS

    local = sub.add_parser("local", help="the local AWS stack (moto server + event pump)")
    lsub = local.add_subparsers(dest="action", required=True)
    up = lsub.add_parser("up", help="start moto server, create every resource, start the pump")
    up.add_argument("--port", type=int, default=5055, help="moto server's port")
    up.add_argument("--stage", default="local")
    up.add_argument("--backend", choices=BACKENDS, default="moto",
                    help="localstack: LocalStack in host mode for every service it serves, "
                         "DynamoDB and Cognito on moto server (docs/deploy.md)")
    up.add_argument("--localstack-port", type=int, default=4566)
    up.set_defaults(func=cmd_local_up)
    lsub.add_parser("down", help="stop what `local up` started").set_defaults(func=cmd_local_down)
    lsub.add_parser("pump", help="run the event pump in the foreground").set_defaults(
        func=cmd_local_pump)


def add_token(sub: Any) -> None:
    tk = sub.add_parser("token", help="a signed token for the local API")
    tk.add_argument("--sub", required=True, help="who (e.g. officer-1)")
    tk.add_argument("--role", action="append", required=True,
                    choices=["operator", "officer", "auditor", "camera"])
    tk.add_argument("--deployment", action="append", help="an officer's deployments")
    tk.add_argument("--camera", help="a camera's <deployment>/<camera>")
    tk.add_argument("--ttl", type=int, default=3600)
    tk.set_defaults(func=cmd_token)
