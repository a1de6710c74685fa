"""`chalice local --stage local` enrolls with the models of the installed wheels (issue 12, item
5), and a missing model file is a 500 (the service's configuration), never the caller's 400.

The stage config is resolved the way Chalice resolves it, and the real `chalice local` runs in a
subprocess against a moto server of its own."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chalice.config import Config
from chalice.constants import DEFAULT_HANDLER_NAME

from chalicelib.auth import issue_local_token
from chalicelib.local import moto_server, resources
from chalicelib.settings import Settings
from chalicelib.vision.factory import detector_spec, recognizer_spec
from chalicelib.vision.models import (
    LAYER_DETECTOR_FILE,
    LAYER_RECOGNIZER_FILE,
    default_detector_spec,
    default_recognizer_spec,
    layer_model_env,
)
from infra.deploy import staged_config

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_layer", REPO / "layers" / "build_layer.py")
build_layer = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(build_layer)  # type: ignore[union-attr]  (a script, not a package)

CONFIG = json.loads((REPO / ".chalice" / "config.json").read_text())
MODEL_VARS = ("LFR_DETECTOR_PATH", "LFR_DETECTOR_SHA256", "LFR_RECOGNIZER_PATH",
              "LFR_RECOGNIZER_SHA256")
SECRET = "chalice-local-test-secret-of-32-bytes"


def _env(config: dict[str, Any], stage: str, function: str) -> dict[str, str]:
    """The environment Chalice gives a function of a stage. `chalice local` applies the
    stage's api_handler scope (chalice.constants.DEFAULT_HANDLER_NAME)."""
    return Config(chalice_stage=stage, function_name=function,
                  config_from_disk=config).environment_variables


def test_chalice_local_resolves_the_wheel_models_and_lambdas_the_layer() -> None:
    local = _env(CONFIG, "local", DEFAULT_HANDLER_NAME)
    assert not any(v in local for v in MODEL_VARS), local
    s = Settings.from_env(local)
    assert detector_spec(s) == default_detector_spec()
    assert recognizer_spec(s) == default_recognizer_spec()
    # Every deployed function reads the layer's files: dev and prod say so in the config; the
    # local stage's are added where `make deploy-local` attaches the layer.
    layer = layer_model_env()
    for stage, config in (("dev", CONFIG), ("prod", CONFIG),
                          ("local", staged_config("local", "arn:aws:lambda:layer:x:1"))):
        for fn in CONFIG["stages"][stage]["lambda_functions"]:
            env = _env(config, stage, fn)
            assert {k: env.get(k) for k in layer} == layer, (stage, fn)
    assert (build_layer.DETECTOR_FILE, build_layer.RECOGNIZER_FILE) == (
        LAYER_DETECTOR_FILE, LAYER_RECOGNIZER_FILE)
    assert layer["LFR_DETECTOR_SHA256"] == default_detector_spec().sha256
    assert layer["LFR_RECOGNIZER_SHA256"] == default_recognizer_spec().sha256


@contextmanager
def _chalice_local(endpoint: str, log: Path, extra: dict[str, str] | None = None) -> Iterator[str]:
    port = moto_server.free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LFR_") and k not in ("AWS_PROFILE",)}
    env.update({**moto_server.LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint,
                "LFR_LOCAL_AUTH_SECRET": SECRET, "POWERTOOLS_METRICS_DISABLED": "true",
                # as `lfr local up` exports it: without a link key the API does not start
                "LFR_LINK_SECRET": SECRET, **(extra or {})})
    chalice = Path(sys.executable).with_name("chalice")
    out = log.open("wb")
    proc = subprocess.Popen(
        [str(chalice), "local", "--stage", "local", "--port", str(port), "--no-autoreload"],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    assert json.loads(resp.read())["stage"] == "local"
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"chalice local did not come up:\n{text}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


def _post(url: str, body: Any) -> tuple[int, Any]:
    token = issue_local_token(SECRET, "operator-1", ["operator"])
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def moto_local() -> Iterator[str]:
    """A moto server holding the resources of stage `local`."""
    server = moto_server.start()
    saved = {k: os.environ.get(k) for k in moto_server.LOCAL_ENV}
    os.environ.update(moto_server.LOCAL_ENV)
    try:
        resources.create_all(Settings(stage="local", endpoint_url=server.endpoint))
        yield server.endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        moto_server.stop(server)


def _subject() -> dict[str, Any]:
    image = (REPO / "demo" / "people" / "Cory_Gardner" / "1.jpg").read_bytes()
    return {"display_name": "Cory Gardner", "images_b64": [base64.b64encode(image).decode()],
            "source": "official portrait", "reason": "test"}


def test_chalice_local_stage_enrolls_a_subject(moto_local: str, tmp_path: Path) -> None:
    with _chalice_local(moto_local, tmp_path / "chalice.log") as url:
        status, wl = _post(f"{url}/watchlists", {"name": "chalice local"})
        assert status == 200, wl
        status, done = _post(f"{url}/watchlists/{wl['watchlist_id']}/subjects", _subject())
        assert status == 200, done
        assert done["subject_id"].startswith("s-") and done["image_quality"][0] > 0.5


def test_a_missing_model_file_is_a_server_error_not_a_bad_request(
        moto_local: str, tmp_path: Path) -> None:
    missing = {"LFR_DETECTOR_PATH": "/nonexistent/retinaface.onnx",
               "LFR_DETECTOR_SHA256": default_detector_spec().sha256}
    log = tmp_path / "chalice.log"
    with _chalice_local(moto_local, log, missing) as url:
        status, wl = _post(f"{url}/watchlists", {"name": "misconfigured"})
        assert status == 200, wl
        status, body = _post(f"{url}/watchlists/{wl['watchlist_id']}/subjects", _subject())
        assert status == 500, body
        assert "configuration" in body["Message"]
        assert "/nonexistent" not in body["Message"]  # server paths stay in the server's log
    # The operator of the service learns what is wrong from the log (no image, no name in it).
    logged = [json.loads(line) for line in log.read_text().splitlines()
              if line.startswith("{") and "configuration error" in line]
    assert logged and "/nonexistent/retinaface.onnx" in logged[0]["error"]
