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
