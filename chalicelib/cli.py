"""The `lfr` command: local stack, enrollment, camera gateway, dead letters, demo."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chalicelib.local.state import local_settings


def _runtime() -> Any:
    """What the operator's commands act through: the local stack's where `lfr local up` left
    one and the environment names no other (local/state.py)."""
    from chalicelib.runtime import Runtime

    return Runtime(local_settings())


def _local_grant(s: Any, deployment_id: str, camera_id: str) -> dict[str, Any]:
    """An upload grant made with the local stack's own credentials (`lfr gateway` without
    --api or --grant)."""
    from chalicelib.clients import client
    from chalicelib.ops.cameras import camera_upload_grant

    return camera_upload_grant(client("s3", s), s.frames_bucket, deployment_id, camera_id,
                               s.max_batch_bytes)


def build_parser() -> argparse.ArgumentParser:
    """Each command group registers its own commands in its own module; here only their order
    in `lfr --help`, and what the layers below cannot import (the runtime, the local grant)."""
    from chalicelib import demo
    from chalicelib.batch import cli as batch
    from chalicelib.evaluation import cli as evaluation
    from chalicelib.gateway import command as gateway
    from chalicelib.local import cli as local
    from chalicelib.ops import cli as ops

    p = argparse.ArgumentParser(prog="lfr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    local.add_local(sub)
    ops.add_dlq(sub, _runtime)
    ops.add_enroll(sub, _runtime)
    ops.add_enroll_bulk(sub, _runtime)
    ops.add_deployment(sub, _runtime)
    local.add_token(sub)
    ops.add_authorise(sub, _runtime)
    gateway.add_commands(sub, local_grant=_local_grant)
    evaluation.add_commands(sub)
    batch.add_commands(sub)
    demo.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
