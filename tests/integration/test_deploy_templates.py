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


def _alarms(template: dict) -> dict[str, dict]:
    return {r["Properties"]["AlarmName"]: r["Properties"] for r in template["Resources"].values()
            if r.get("Type") == "AWS::CloudWatch::Alarm"}


def test_alarms_on_both_dead_letter_queues_and_on_worker_errors_notify_operators() -> None:
    t = cfn.infra_template("prod")
    alarms = _alarms(t)
    expected = {
        "lfr-prod-frames-dlq-not-empty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                          "QueueName", "lfr-prod-frames-dlq"),
        "lfr-prod-alerts-dlq-not-empty": ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                          "QueueName", "lfr-prod-alerts-dlq"),
        "lfr-prod-frames_worker-errors": ("AWS/Lambda", "Errors",
                                          "FunctionName", "lfr-prod-frames_worker"),
        "lfr-prod-alerts_notifier-errors": ("AWS/Lambda", "Errors",
                                            "FunctionName", "lfr-prod-alerts_notifier"),
        "lfr-prod-retention_sweep-errors": ("AWS/Lambda", "Errors",
                                            "FunctionName", "lfr-prod-retention_sweep"),
        "lfr-prod-retention-failures": ("LiveFacialRecognition", "RetentionFailures",
                                        "service", "lfr-retention"),
    }
    assert set(alarms) == set(expected)
    queues = {r["Properties"]["QueueName"] for r in t["Resources"].values()
              if r["Type"] == "AWS::SQS::Queue"}
    for name, (namespace, metric, dim, value) in expected.items():
        a = alarms[name]
        assert (a["Namespace"], a["MetricName"]) == (namespace, metric)
        assert a["Dimensions"] == [{"Name": dim, "Value": value}]
        assert (a["Threshold"], a["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert a["AlarmActions"] == a["OKActions"] == [{"Ref": "OpsTopic"}]
        assert a["TreatMissingData"] == "notBreaching"
        if namespace == "AWS/SQS":
            assert value in queues  # the DLQ the stack creates, by its name
    assert t["Resources"]["OpsTopic"]["Type"] == "AWS::SNS::Topic"
    assert t["Outputs"]["OpsTopicArn"] == {"Value": {"Ref": "OpsTopic"}}
    # The topic is encrypted: CloudWatch must be let use the key, and publish to the topic.
    key_policy = t["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)
    topic_policy = t["Resources"]["OpsTopicPolicy"]["Properties"]["PolicyDocument"]
    assert topic_policy["Statement"][0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


def test_the_merged_stack_alarms_on_the_functions_by_reference() -> None:
    # chalice package leaves function names to CloudFormation (no FunctionName property).
    def fn(handler: str) -> dict:
        return {"Type": "AWS::Serverless::Function", "Properties": {
            "Handler": handler, "Role": {"Fn::GetAtt": [f"{handler}Role", "Arn"]}}}

    sam = {"Resources": {"FramesWorker": fn("app.frames_worker"),
                         "AlertsNotifier": fn("app.alerts_notifier"),
                         "APIHandler": fn("app.app")}}
    merged = cfn.merge_template("dev", sam, "./layer.zip")
    alarms = _alarms(merged)
    assert alarms["lfr-dev-frames_worker-errors"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "FramesWorker"}}]
    assert alarms["lfr-dev-alerts_notifier-errors"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "AlertsNotifier"}}]
    assert alarms["lfr-dev-frames-dlq-not-empty"]["Dimensions"] == [
        {"Name": "QueueName", "Value": "lfr-dev-frames-dlq"}]


def test_the_handlers_may_dead_letter_to_their_own_dlq_only() -> None:
    for fn, queue in (("frames_worker", "frames"), ("alerts_notifier", "alerts")):
        doc = json.loads(policies.policy_file("prod", fn).read_text())
        [st] = [s for s in doc["Statement"] if s["Sid"] == "DeadLetterWithReason"]
        assert st["Action"] == ["sqs:GetQueueUrl", "sqs:SendMessage"]
        assert st["Resource"] == [f"arn:aws:sqs:eu-west-2:*:lfr-prod-{queue}-dlq"]
