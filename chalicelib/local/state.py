"""The state of the local stack that `lfr local up` started (.lfr/local.json), and the settings
that honour it: read by `lfr` (chalicelib/cli.py) and `lfr batch` (chalicelib/batch/cli.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE = Path(".lfr") / "local.json"


def local_settings():  # type: ignore[no-untyped-def]
    """Settings from the environment, or from the local stack that `lfr local up` started."""
    from chalicelib.local import moto_server
    from chalicelib.settings import Settings

    if not os.environ.get("AWS_ENDPOINT_URL") and STATE.exists():
        state = json.loads(STATE.read_text())
        os.environ.update({**moto_server.LOCAL_ENV, **state["env"]})
    return Settings.from_env()
