"""The state of the local stack that `lfr local up` started (.lfr/local.json), and the settings
that honour it: read by the `lfr` commands (cli.py and the command groups it gathers).

Reading settings writes nothing: the stack's endpoints, secrets and placeholder keys come back
as a Settings value (its clients are given the keys), never through os.environ, so one
command's stack cannot leak into another's clients or a test's process.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from chalicelib.local import moto_server
from chalicelib.settings import WORK_DIR, Settings

STATE = WORK_DIR / "local.json"


def local_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (os.environ if None), or, where it names no endpoint, from
    the local stack that `lfr local up` started over it."""
    env = os.environ if environ is None else environ
    if env.get("AWS_ENDPOINT_URL") or not STATE.exists():
        return Settings.from_env(env)
    state = json.loads(STATE.read_text())
    return stack_settings({**env, **moto_server.LOCAL_ENV, **state["env"]})


def stack_settings(env: Mapping[str, str]) -> Settings:
    """Settings of a local stack's environment, carrying its placeholder keys: boto3 would
    otherwise look for them in os.environ."""
    return dataclasses.replace(Settings.from_env(env), credentials=moto_server.CREDENTIALS)
