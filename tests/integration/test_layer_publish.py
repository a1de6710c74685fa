"""The inference layer is published inline up to Lambda's 50 MB, through S3 above it
(infra/deploy.py publish_layer; the real layer zips to ~92 MB). Against moto server."""

from __future__ import annotations

import base64
import hashlib

import boto3
import pytest

from infra import deploy


def _published(session: boto3.session.Session, arn: str) -> dict:
    name, version = arn.rsplit(":", 2)[-2:]
    return session.client("lambda").get_layer_version(LayerName=name,
                                                      VersionNumber=int(version))


@pytest.mark.parametrize("over_the_limit", [False, True])
def test_a_layer_goes_through_s3_only_above_the_inline_limit(local_stack, monkeypatch,
                                                             over_the_limit: bool) -> None:
    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    stage = f"{local_stack['settings'].stage}l{int(over_the_limit)}"
    content = deploy.stub_layer()
    if over_the_limit:  # the real layer's 92 MB, in miniature
        monkeypatch.setattr(deploy, "INLINE_LAYER_LIMIT", len(content) - 1)
    arns = [deploy.publish_layer(session, stage, content, "python3.12", account)
            for _ in range(2)]  # the second finds the bucket there
    assert arns[0] != arns[1]
    got = _published(session, arns[1])
    assert got["Content"]["CodeSha256"] == base64.b64encode(
        hashlib.sha256(content).digest()).decode()
    s3 = session.client("s3")
    bucket = deploy.artifacts_bucket(stage, account)
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    if not over_the_limit:
        assert bucket not in buckets
        return
    key = f"layers/{deploy.layer_name(stage)}/{hashlib.sha256(content).hexdigest()}.zip"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
