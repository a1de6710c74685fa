"""`chalice deploy --stage local` against a moto server of its own, then boto3 checks of what got
deployed (infra/deploy.py, what `make deploy-local` runs). Offline: a stand-in layer and no
requirements (Chalice would fetch wheels from PyPI); the Python of this venv sets the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_chalice_deploy_against_moto_and_check() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ENDPOINT_URL", "LFR_STAGE", "AWS_PROFILE")}
    chalice = Path(sys.executable).with_name("chalice")
    proc = subprocess.run(
        [sys.executable, "-m", "infra.deploy", "--stage", "local", "--moto", "--stub-layer",
         "--no-requirements", "--chalice", str(chalice)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "deploy-local: every check passed" in out
    for fn in ("lfr-local-frames_worker", "lfr-local-alerts_notifier"):
        assert f"[ok] {fn} <- SQS" in out
        assert f"[ok] {fn} mapping reports batch item failures" in out
        assert f"[ok] {fn} uses the inference layer" in out
        assert f"[ok] {fn} reads the models from the layer" in out
    for alarm in ("frames-dlq-not-empty", "alerts-dlq-not-empty", "frames_worker-errors",
                  "alerts_notifier-errors"):
        assert f"[ok] alarm lfr-local-{alarm}:" in out
    assert "[ok] operators' topic lfr-local-ops" in out
    assert "[FAIL]" not in out
