"""LocalStack in host mode (no Docker, offline), the second local AWS, beside moto server.

LocalStack 2026.3.0 (the last open-source release) runs here as a Python process in a virtualenv
of its own, on Python >= 3.12 (it pins its own boto3). It serves S3, SQS, SNS, STS, CloudWatch,
IAM, Lambda (control plane), API Gateway v1, EventBridge and Logs; its DynamoDB downloads a JDK at
run time (fails offline, then hangs LocalStack's shutdown) and Cognito is paid only, so a mixed
stack keeps both on moto server (`mixed_env`). docs/deploy.md has what differs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.local import moto_server

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "build" / "venv-localstack"
# Unpinned, the newest cbor2 / pyopenssl / localstack-twisted crash LocalStack 2026.3.0 at start.
PINS = ("localstack-core[runtime]==2026.3.0", "cbor2<6", "pyopenssl<26", "localstack-twisted<26")
# Only what LocalStack can serve here: a request for anything else fails at once instead of
# starting an emulator that downloads (DynamoDB) or never becomes ready (Lambda code).
SERVICES = ("s3", "sqs", "sns", "sts", "cloudwatch", "iam", "lambda", "apigateway", "events",
            "logs", "kms")
# Services the mixed stack takes from moto server (AWS_ENDPOINT_URL_<SERVICE ID>).
ON_MOTO = ("DYNAMODB", "COGNITO_IDENTITY_PROVIDER")


class LocalStackUnavailable(RuntimeError):
    """No Python >= 3.12 to run LocalStack on, or its install failed: says what to do."""


def find_python() -> str:
    """A Python >= 3.12: $LFR_LOCALSTACK_PYTHON, pyenv's 3.13 / 3.12, python3.13, python3.12."""
    candidates = [os.environ.get("LFR_LOCALSTACK_PYTHON", "")]
    pyenv = Path.home() / ".pyenv" / "versions"
    for minor in ("3.13", "3.12"):
        candidates += sorted(str(p) for p in pyenv.glob(f"{minor}*/bin/python{minor}"))
        candidates.append(shutil.which(f"python{minor}") or "")
    for exe in filter(None, candidates):
        probe = subprocess.run([exe, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return exe
    raise LocalStackUnavailable(
        "LocalStack needs Python >= 3.12 (Debian's 3.11 fails with a SyntaxError) and none was "
        "found: install one (e.g. pyenv install 3.13) or set LFR_LOCALSTACK_PYTHON=/path/to/python")


def ensure_installed(venv: Path = VENV) -> Path:
    """LocalStack's own virtualenv (build/venv-localstack), created once; its python."""
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return python
    if not python.exists():
        subprocess.run([find_python(), "-m", "venv", str(venv)], check=True)
    print(f"installing LocalStack into {venv} ({', '.join(PINS)}) ...", flush=True)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LocalStackUnavailable(f"pip install of LocalStack failed:\n{proc.stderr[-2000:]}")
    stamp.write_text("\n".join(PINS))
    return python


@dataclass
class LocalStack:
    port: int
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None
    own_root: bool = field(default=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def health(endpoint: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as resp:
        return json.load(resp)


def wait_ready(endpoint: str, timeout: float = 90.0,
               process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            services = health(endpoint).get("services") or {}
            if isinstance(services, dict) and services.get("s3") in ("available", "running"):
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"LocalStack exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"LocalStack at {endpoint} did not come up in {timeout:.0f} s")
        time.sleep(0.25)


def start(port: int | None = None, log_path: Path | None = None,
          root: Path | None = None) -> LocalStack:
    """`root`: LocalStack's FILESYSTEM_ROOT, kept (a temporary one, removed by stop, if None)."""
    python = ensure_installed()
    port = port or moto_server.free_port()
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="lfr-localstack-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, **moto_server.LOCAL_ENV,
        "OVERRIDE_IN_DOCKER": "0",  # this machine has /.dockerenv: LocalStack would think it is in
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "FILESYSTEM_ROOT": str(root),
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "PERSISTENCE": "0",
        "SERVICES": ",".join(SERVICES),
    }
    for k in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
        env.pop(k)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen([str(python), "-m", "localstack.runtime.main"], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    server = LocalStack(port, proc, root, own_root=own_root)
    try:
        wait_ready(server.endpoint, process=proc)
    except RuntimeError:
        stop(server)
        raise
    return server


def stop(server: LocalStack) -> None:
    proc = server.process
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if server.own_root and server.root:
        shutil.rmtree(server.root, ignore_errors=True)


def mixed_env(localstack_endpoint: str, moto_endpoint: str) -> dict[str, str]:
    """LocalStack for every service it serves, moto server for DynamoDB and Cognito."""
    return {**moto_server.LOCAL_ENV, "AWS_ENDPOINT_URL": localstack_endpoint,
            **{f"AWS_ENDPOINT_URL_{sid}": moto_endpoint for sid in ON_MOTO}}
