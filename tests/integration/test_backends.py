"""What each local AWS (moto server; LocalStack with DynamoDB on moto) holds and enforces, where
the two differ. Runs on the backend of the run: LFR_TEST_BACKEND (`make test-localstack`)."""

from __future__ import annotations

from typing import Any

from chalicelib import clients, names
from chalicelib.ops.deployments import PLATFORMS


def test_every_resource_is_created_where_the_endpoints_say(local_stack: dict[str, Any]) -> None:
    s = local_stack["settings"]
    sns = clients.client("sns", s)
    apps = {a["PlatformApplicationArn"] for page in
            sns.get_paginator("list_platform_applications").paginate()
            for a in page["PlatformApplications"]}
    for platform in PLATFORMS:  # LocalStack refuses a credential without its principal
        assert names.platform_app_arn(s, platform) in apps
    ddb = clients.client("dynamodb", s)
    assert f"{s.table_prefix}-alerts" in ddb.list_tables()["TableNames"]
    s3 = clients.client("s3", s)
    assert s.frames_bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if local_stack["backend"] == "localstack":
        assert clients.endpoint_url("dynamodb", s) != clients.endpoint_url("s3", s)
        assert clients.endpoint_url("s3", s) == local_stack["endpoint"]


def _post(grant: dict[str, Any], key: str, body: bytes) -> Any:
    import requests

    return requests.post(grant["url"], data={**grant["fields"], "key": key},
                         files={"file": (key.rsplit("/", 1)[-1], body)}, timeout=30)


def test_a_camera_grant_s_post_policy(local_stack: dict[str, Any]) -> None:
    """The grant's policy (size range, key prefix) holds on LocalStack as on AWS; moto server
    does not evaluate POST policies, so there the worker's own checks are what holds
    (test_api_security.py::test_worker_refuses_what_a_camera_may_not_send)."""
    from chalicelib.ops.cameras import camera_upload_grant

    s = local_stack["settings"]
    s3 = clients.client("s3", s)
    # The evidence bucket: the frames bucket would queue these for the worker.
    grant = camera_upload_grant(s3, s.evidence_bucket, "dep-policy", "cam-1", max_bytes=1024)
    inside = grant["prefix"] + "ok.lfrb"
    assert _post(grant, inside, b"x" * 1000).status_code == 204
    too_big = _post(grant, grant["prefix"] + "big.lfrb", b"x" * 4096)
    outside = _post(grant, "frames/dep-other/cam-1/x.lfrb", b"x" * 10)
    if local_stack["backend"] == "localstack":
        assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
        assert outside.status_code == 403 and "AccessDenied" in outside.text
    else:  # the difference, pinned: if moto starts enforcing, this says so
        assert too_big.status_code == 204 and outside.status_code == 204


def test_lfr_local_up_and_down_on_the_backend(tmp_path: Any, monkeypatch: Any) -> None:
    """`lfr local up --backend <this run's>`: servers, resources and the pump; `down` ends them."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from chalicelib.local.moto_server import LOCAL_ENV, free_port
    from chalicelib.settings import Settings
    from tests.conftest import backend_under_test

    backend = backend_under_test()
    lfr = str(Path(sys.executable).with_name("lfr"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "LFR_"))}
    up = subprocess.run([lfr, "local", "up", "--backend", backend, "--port", str(free_port()),
                         "--localstack-port", str(free_port())], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=180)
    state_file = tmp_path / ".lfr" / "local.json"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads(state_file.read_text())
        assert state["backend"] == backend
        for k, v in LOCAL_ENV.items():  # the credentials `local up` tells a shell to export
            monkeypatch.setenv(k, v)
        s = Settings.from_env({**LOCAL_ENV, **state["env"]})
        if backend == "localstack":
            assert state["localstack_pid"] and "AWS_ENDPOINT_URL_DYNAMODB" in state["env"]
            assert "LocalStack http://127.0.0.1:" in up.stdout
        else:
            assert state["localstack_pid"] is None
        assert f"export AWS_ENDPOINT_URL={s.endpoint_url}" in up.stdout
        clients.reset()
        buckets = [b["Name"] for b in clients.client("s3", s).list_buckets()["Buckets"]]
        assert s.frames_bucket in buckets
        assert f"{s.table_prefix}-alerts" in clients.client("dynamodb", s).list_tables()[
            "TableNames"]
        token = subprocess.run([lfr, "token", "--sub", "op", "--role", "operator"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
    finally:
        down = subprocess.run([lfr, "local", "down"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        clients.reset()
    assert down.returncode == 0 and not state_file.exists()
    pids = [state[k] for k in ("moto_pid", "pump_pid", "localstack_pid") if state.get(k)]
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    """Running, not a zombie (they are reparented once `lfr local up` exits)."""
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_pushes_read_back_for_both_platforms(local_stack: dict[str, Any]) -> None:
    """What an FCM and an APNs phone received, read back on either backend (the demo prints it):
    LocalStack keeps each platform's own part, moto the whole message."""
    import json
    import uuid

    from chalicelib.local.inspect import delivered_pushes

    s = local_stack["settings"]
    sns = clients.client("sns", s)
    data = {"alert_id": f"al-{uuid.uuid4().hex[:8]}"}
    payload = json.dumps({"default": "d", "GCM": json.dumps({"data": data}),
                          "APNS": json.dumps({"aps": {"alert": "a"}, "lfr": data})})
    arns = {}
    for platform in PLATFORMS:
        arns[platform] = sns.create_platform_endpoint(
            PlatformApplicationArn=names.platform_app_arn(s, platform),
            Token=f"token-{uuid.uuid4().hex}", CustomUserData=f"officer-{platform}")["EndpointArn"]
        sns.publish(TargetArn=arns[platform], Message=payload, MessageStructure="json")
    got = {p.endpoint_arn: p for p in delivered_pushes(local_stack["endpoint"], arns.values())}
    for platform, arn in arns.items():
        assert got[arn].data == data, platform
        assert got[arn].officer == f"officer-{platform}"
