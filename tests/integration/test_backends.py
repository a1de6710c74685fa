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
