"""The deployment definitions stay in step with the app: a policy per function (least privilege),
CloudFormation for the same resources the local stack creates, and a valid template."""

from __future__ import annotations

import json

import pytest

from chalicelib.local.pump import load_app
from infra import cfn, policies
from infra import spec as spec_mod


def test_every_function_has_its_policy_file_and_config_entry() -> None:
    assert policies.main(["--check"]) == 0
    config = json.loads(policies.CONFIG.read_text())
    assert set(config["stages"]) >= {"dev", "prod", "local"}
    assert config["autogen_policy"] is False
    for stage in spec_mod.STAGES:
        for fn in policies.app_functions(load_app()):
            doc = json.loads(policies.policy_file(stage, fn).read_text())
            assert policies.wildcard_actions(doc) == []
            for st in doc["Statement"]:
                for r in st["Resource"]:
                    assert r != "*" and f"lfr-{stage}" in r or st["Sid"] == "UseDataKey", r
            lf = config["stages"][stage]["lambda_functions"][fn]
            assert lf["iam_policy_file"] == f"policy-{stage}-{fn}.json"


def test_a_function_without_permissions_is_refused() -> None:
    sp = spec_mod.build(spec_mod.stage_settings("dev"))
    with pytest.raises(KeyError, match="no IAM permissions defined"):
        policies.statements("some_new_handler", sp)


def test_infra_template_has_what_the_local_stack_creates() -> None:
    t = cfn.infra_template("prod")
    res = t["Resources"]
    by_type: dict[str, list[dict]] = {}
    for r in res.values():
        by_type.setdefault(r["Type"], []).append(r["Properties"])
    sp = spec_mod.build(spec_mod.stage_settings("prod"))
    assert {b["BucketName"] for b in by_type["AWS::S3::Bucket"]} == {b.name for b in sp.buckets}
    for b in by_type["AWS::S3::Bucket"]:
        assert all(b["PublicAccessBlockConfiguration"].values())
        assert b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert b["LifecycleConfiguration"]["Rules"]
    tables = {t["TableName"]: t for t in by_type["AWS::DynamoDB::Table"]}
    assert set(tables) == {t.name for t in sp.tables}
    for tbl in tables.values():
        assert tbl["SSESpecification"]["SSEEnabled"]
        assert tbl["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    queues = {q["QueueName"]: q for q in by_type["AWS::SQS::Queue"]}
    for q in sp.queues:
        assert queues[q.name]["RedrivePolicy"]["maxReceiveCount"] == q.max_receive_count
        assert q.dlq in queues
    assert by_type["AWS::KMS::Key"] and by_type["AWS::SNS::Topic"]
    for kind in ("ComputeEnvironment", "JobQueue", "JobDefinition"):
        assert by_type[f"AWS::Batch::{kind}"]
    frames = res["FramesBucket"]["Properties"]["NotificationConfiguration"]
    assert frames["QueueConfigurations"][0]["Filter"]["S3Key"]["Rules"][0]["Value"] == "frames/"
    assert frames["EventBridgeConfiguration"]["EventBridgeEnabled"]


def test_infra_template_passes_cfn_lint() -> None:
    cfnlint = pytest.importorskip("cfnlint.api")
    template = cfn.infra_template("prod")
    regions = template["Metadata"]["cfn-lint"]["config"]["regions"]
    matches = cfnlint.lint(json.dumps(template), regions=regions)
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], errors
