"""`chalice deploy --stage local` against a moto server of its own, then boto3 checks of what got
deployed (infra/deploy.py, what `make deploy-local` runs), the REST API and its Cognito user pool
included. Offline: a stand-in layer and no requirements (Chalice would fetch wheels from PyPI);
the Python of this venv sets the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import skip_on_localstack

REPO = Path(__file__).resolve().parents[2]
# Every route of app.py and whether the Cognito authorizer guards it.
OPEN_ROUTES = {("GET", "/health"), ("GET", "/console")}


def test_chalice_deploy_against_moto_and_check() -> None:
    skip_on_localstack("its Lambda never becomes Active without Docker, so `chalice deploy` "
                       "fails; the deploy runs on moto server")
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
    # The REST API: every route, its authorizer, the user pool behind it (infra/deploy.py).
    from chalicelib.local.pump import load_app

    routes = {(verb, path) for path, methods in load_app().routes.items() for verb in methods}
    assert len(routes) > len(OPEN_ROUTES)
    assert "[ok] REST API deployed to stage 'api'" in out
    for verb, path in sorted(routes):
        guard = "no authorizer" if (verb, path) in OPEN_ROUTES else "Cognito lfr-users ("
        assert f"[ok] route {verb} {path}: {guard}" in out, (verb, path)
    assert "[ok] REST API has no method app.py lacks" in out
    assert "[ok] API Gateway (" in out and ") may invoke lfr-local" in out
    assert "[ok] Cognito user pool lfr-local-users (arn:aws:cognito-idp:" in out
    assert "[ok] user pool groups ['auditor', 'camera', 'officer', 'operator']" in out
    assert "[FAIL]" not in out
