"""onnxruntime's usage telemetry stays off (issue 10, item 6c): making the worker's sessions and
running them writes nothing under HOME. Each check runs in a fresh interpreter, because
onnxruntime decides once per process, at import, and this test process imported it already."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BUILD_AND_RUN = """
import numpy as np
from chalicelib.settings import Settings
from chalicelib.vision.factory import build_pipeline

pipeline = build_pipeline(Settings())
pipeline.detect(np.zeros((240, 320, 3), np.uint8))
pipeline.embed([np.zeros((112, 112, 3), np.uint8)])
print("ran")
"""

PLAIN = """
import onnxruntime as ort
from chalicelib.vision.models import default_detector_spec, load_model_bytes

# onnxruntime as it comes, without the project's module in front of it.
ort.InferenceSession(load_model_bytes(default_detector_spec()),
                     providers=["CPUExecutionProvider"])
print("ran")
"""


def _run(code: str, home: Path) -> list[str]:
    """Run `code` with HOME at an empty folder; what it left there."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    home.mkdir()
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0 and "ran" in out.stdout, out.stderr[-2000:]
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


# The switch as onnxruntime itself reads it: the environment at the moment it is first imported
# (it reads ORT_DISABLE_TELEMETRY once, when it initialises). A meta-path hook sees that moment,
# whichever module imports it first, through each of the app's entry points.
SWITCH_AT_IMPORT = """
import os, sys

seen = []


class AtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" and not seen:
            seen.append(os.environ.get("ORT_DISABLE_TELEMETRY"))
        return None


sys.meta_path.insert(0, AtImport())
import importlib
importlib.import_module(sys.argv[1])
if sys.argv[1] == "chalicelib.local.pump":  # the app, then the worker's pipeline
    from chalicelib.local.pump import load_app
    from chalicelib.runtime import runtime
    load_app()
    runtime().pipeline
print("ran", seen)
"""


@pytest.mark.parametrize("entry", ["chalicelib.local.pump", "chalicelib.vision.factory",
                                   "chalicelib.batch.run"])
def test_onnxruntime_is_imported_with_its_telemetry_switched_off(entry: str) -> None:
    """Fails without the switch in vision/onnx_runtime.py, on any machine: it checks what
    onnxruntime reads, not whether this build happened to write anything."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", SWITCH_AT_IMPORT, entry], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "ran ['1']", out.stdout[-500:]


def test_the_worker_sessions_write_nothing_under_home(tmp_path) -> None:
    assert _run(BUILD_AND_RUN, tmp_path / "home") == []


def test_without_the_switch_onnxruntime_does_write_there(tmp_path) -> None:
    # The check above can fail: onnxruntime 1.32 as installed leaves its device id and event
    # cache in ~/.cache/Microsoft/DeveloperTools/ when nothing turns it off.
    left = _run(PLAIN, tmp_path / "home")
    if not left:  # seen on a clean CI machine: this build wrote nothing even when left on
        pytest.skip("onnxruntime wrote no usage data here even without the switch, so the "
                    "check above cannot be shown to fail on this machine")
    assert any(p.startswith(".cache/Microsoft/DeveloperTools") for p in left), left
