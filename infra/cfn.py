"""CloudFormation for everything beyond the functions, from infra/spec.py.

Two renderings of the same resources:
- `infra_template(stage)`: a stand-alone stack (buckets, tables, queues + DLQs, topic, KMS key,
  S3 -> SQS notification, the operators' topic and CloudWatch alarms, the AWS Batch GPU path).
  Deploy it, then `chalice deploy` (the alarms name the functions it will create).
- `merge_template(stage, layer_zip)`: the same resources plus the inference layer and the overrides
  Chalice cannot express (ReportBatchItemFailures, queue ARNs by reference, least-privilege role
  policies naming the key, alarms on the functions by reference), for
  `chalice package --merge-template` (one SAM stack).
SNS platform applications have no CloudFormation type: infra/push_apps.py creates them.
"""

from __future__ import annotations

from typing import Any

from chalicelib import monitoring
from infra import policies
from infra import spec as spec_mod

KEY = "DataKey"
GPU_INSTANCE_TYPES = ["g5.xlarge", "g5.2xlarge", "g4dn.xlarge", "g4dn.2xlarge"]


def _sub(s: str) -> dict[str, str]:
    return {"Fn::Sub": s}


def _account() -> dict[str, str]:
    return _sub("${AWS::AccountId}")


def _arn(logical: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical, "Arn"]}


def _tags(sp: spec_mod.Spec) -> list[dict[str, str]]:
    return [{"Key": "app", "Value": "lfr"}, {"Key": "stage", "Value": sp.settings.stage}]


def kms(sp: spec_mod.Spec) -> dict[str, Any]:
    return {
        KEY: {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Description": f"lfr {sp.settings.stage}: buckets, tables, queues, topic",
                "EnableKeyRotation": True,
                "KeyPolicy": {"Version": "2012-10-17", "Statement": [
                    {"Sid": "AccountAdmin", "Effect": "Allow",
                     "Principal": {"AWS": _sub("arn:${AWS::Partition}:iam::"
                                               "${AWS::AccountId}:root")},
                     "Action": "kms:*", "Resource": "*"},
                    {"Sid": "S3NotificationsToEncryptedQueue", "Effect": "Allow",
                     "Principal": {"Service": "s3.amazonaws.com"},
                     "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                     "Condition": {"StringEquals": {"aws:SourceAccount": _account()}}},
                    # Alarms publish to the operators' topic, encrypted with this key.
                    {"Sid": "CloudWatchAlarmsToEncryptedTopic", "Effect": "Allow",
                     "Principal": {"Service": "cloudwatch.amazonaws.com"},
                     "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
                     "Condition": {"StringEquals": {"aws:SourceAccount": _account()}}},
                ]},
                "Tags": _tags(sp),
            },
        },
        "DataKeyAlias": {"Type": "AWS::KMS::Alias",
                         "Properties": {"AliasName": sp.kms_alias, "TargetKeyId": {"Ref": KEY}}},
    }


def queues(sp: spec_mod.Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in sp.queues:
        dlq = q.logical.removesuffix("Queue") + "DeadLetterQueue"
        out[dlq] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": q.dlq, "MessageRetentionPeriod": 14 * 24 * 3600,
            "KmsMasterKeyId": {"Ref": KEY}, "Tags": _tags(sp)}}
        out[q.logical] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": q.name, "VisibilityTimeout": q.visibility_s,
            "KmsMasterKeyId": {"Ref": KEY}, "KmsDataKeyReusePeriodSeconds": 300,
            "RedrivePolicy": {"deadLetterTargetArn": _arn(dlq),
                              "maxReceiveCount": q.max_receive_count},
            "Tags": _tags(sp)}}
        out[dlq.removesuffix("Queue") + "Redrive"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": dlq}], "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                    "Action": "sqs:SendMessage", "Resource": _arn(dlq),
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}}
    return out


def buckets(sp: spec_mod.Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for b in sp.buckets:
        props: dict[str, Any] = {
            "BucketName": b.name,
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                  "KMSMasterKeyID": _arn(KEY)},
                "BucketKeyEnabled": True}]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True, "IgnorePublicAcls": True,
                "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {"Rules": [
                {"Id": f"expire-{r.prefix.strip('/')}", "Status": "Enabled", "Prefix": r.prefix,
                 "ExpirationInDays": r.days,
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
                for r in b.lifecycle]},
            "Tags": _tags(sp),
        }
        depends = []
        notif: dict[str, Any] = {}
        if b.notify:
            notif["QueueConfigurations"] = [
                {"Event": "s3:ObjectCreated:*", "Queue": _arn(q),
                 "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": prefix}]}}}
                for prefix, q in b.notify.items()]
            depends += [f"{q}S3Policy" for q in b.notify.values()]
            for q in set(b.notify.values()):
                out[f"{q}S3Policy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
                    "Queues": [{"Ref": q}], "PolicyDocument": {"Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "S3ObjectCreated", "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage", "Resource": _arn(q),
                            "Condition": {
                                "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{b.name}"},
                                "StringEquals": {"aws:SourceAccount": _account()}}}]}}}
        if b.eventbridge:
            notif["EventBridgeConfiguration"] = {"EventBridgeEnabled": True}
        if notif:
            props["NotificationConfiguration"] = notif
        res: dict[str, Any] = {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain",
                               "UpdateReplacePolicy": "Retain", "Properties": props}
        if depends:
            res["DependsOn"] = sorted(set(depends))
        out[b.logical] = res
        out[b.logical + "Policy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": b.logical},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{b.name}", f"arn:aws:s3:::{b.name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}}
    return out


_DROP = ("provisioned_throughput", "ProvisionedThroughput", "attribute_definitions")


def _camel(d: dict[str, Any]) -> Any:
    """pynamodb's snake_case schema keys -> CloudFormation's PascalCase."""
    names = {"index_name": "IndexName", "key_schema": "KeySchema", "projection": "Projection",
             "projection_type": "ProjectionType", "attribute_name": "AttributeName",
             "key_type": "KeyType"}
    if isinstance(d, dict):
        return {names.get(k, k): _camel(v) for k, v in d.items()
                if k not in _DROP}
    if isinstance(d, list):
        return [_camel(x) for x in d]
    return d


def tables(sp: spec_mod.Spec) -> dict[str, Any]:
    out = {}
    for t in sp.tables:
        props: dict[str, Any] = {
            "TableName": t.name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": t.schema["attribute_definitions"],
            "KeySchema": sorted(t.schema["key_schema"], key=lambda k: k["KeyType"]),
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS",
                                 "KMSMasterKeyId": {"Ref": KEY}},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": sp.settings.stage == "prod",
            "Tags": _tags(sp),
        }
        gsis = [_camel(g) for g in t.schema.get("global_secondary_indexes", [])]
        for g in gsis:
            g["KeySchema"] = sorted(g["KeySchema"], key=lambda k: k["KeyType"])
            g.setdefault("Projection", {"ProjectionType": "ALL"})
        if gsis:
            props["GlobalSecondaryIndexes"] = gsis
        if t.ttl_attribute:
            props["TimeToLiveSpecification"] = {"AttributeName": t.ttl_attribute,
                                                "Enabled": True}
        out[t.logical] = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                          "UpdateReplacePolicy": "Retain", "Properties": props}
    return out


def link_secret(sp: spec_mod.Spec) -> dict[str, Any]:
    """The key that signs alert links, generated here at deploy; only the API and the notifier
    may read it (infra/policies.py, chalicelib/link_secret.py)."""
    return {"LinkSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
        "Name": sp.settings.link_secret_name, "KmsKeyId": {"Ref": KEY},
        "Description": f"{sp.settings.prefix}: signs the alert links pushed to officers",
        "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
        "Tags": _tags(sp)}}}


def topic(sp: spec_mod.Spec) -> dict[str, Any]:
    return {"DeploymentTopic": {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": sp.topic, "KmsMasterKeyId": {"Ref": KEY}, "Tags": _tags(sp)}}}


def alarms(sp: spec_mod.Spec) -> dict[str, Any]:
    """The operators' topic and the alarms of chalicelib/monitoring.py that notify it. Subscribe
    the on-call (email, chat, paging) to the OpsTopicArn output."""
    out: dict[str, Any] = {
        "OpsTopic": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": sp.ops_topic, "KmsMasterKeyId": {"Ref": KEY}, "Tags": _tags(sp)}},
        "OpsTopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [{"Ref": "OpsTopic"}], "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "CloudWatchAlarms", "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": "sns:Publish", "Resource": {"Ref": "OpsTopic"},
                    "Condition": {"StringEquals": {"aws:SourceAccount": _account()}}}]}}},
    }
    for a in sp.alarms:  # the resource's properties are PutMetricAlarm's parameters
        out[a.logical] = {"Type": "AWS::CloudWatch::Alarm",
                          "Properties": monitoring.put_alarm_args(a, {"Ref": "OpsTopic"})}
    return out


def users(sp: spec_mod.Spec) -> dict[str, Any]:
    """Who may call the API: a Cognito user pool whose groups are the app's roles. Officers
    carry `custom:deployments`, cameras `custom:camera` (chalicelib/auth.py reads both). Its ARN
    is given to `chalice deploy` as LFR_COGNITO_USER_POOL_ARN, which attaches the authorizer."""
    pool = {"Type": "AWS::Cognito::UserPool", "Properties": {
        "UserPoolName": f"{sp.settings.prefix}-users",
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
        "MfaConfiguration": "ON",
        "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
        "Policies": {"PasswordPolicy": {"MinimumLength": 14, "RequireLowercase": True,
                                        "RequireUppercase": True, "RequireNumbers": True,
                                        "RequireSymbols": True}},
        "Schema": [
            {"Name": "deployments", "AttributeDataType": "String", "Mutable": True},
            {"Name": "camera", "AttributeDataType": "String", "Mutable": True},
        ],
        "UserPoolTags": {"project": "lfr", "stage": sp.settings.stage},
    }}
    client = {"Type": "AWS::Cognito::UserPoolClient", "Properties": {
        "UserPoolId": {"Ref": "UserPool"}, "ClientName": f"{sp.settings.prefix}-console",
        "GenerateSecret": False, "IdTokenValidity": 60, "AccessTokenValidity": 60,
        "TokenValidityUnits": {"IdToken": "minutes", "AccessToken": "minutes"},
        "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        # Custom attributes are set by administrators only (who is assigned where).
        "WriteAttributes": ["email"],
        "ReadAttributes": ["email", "custom:deployments", "custom:camera"],
    }}
    groups = {
        f"{role.capitalize()}Group": {"Type": "AWS::Cognito::UserPoolGroup", "Properties": {
            "UserPoolId": {"Ref": "UserPool"}, "GroupName": role}}
        for role in ("operator", "officer", "auditor", "camera")
    }
    return {"UserPool": pool, "UserPoolClient": client, **groups}


def batch(sp: spec_mod.Spec) -> dict[str, Any]:
    """AWS Batch on GPU instances: `lfr batch` for every upload under archive/."""
    s = sp.settings
    job_policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadArchives", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{s.frames_bucket}/archive/*"]},
        {"Sid": "ListArchives", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{s.frames_bucket}"],
         "Condition": {"StringLike": {"s3:prefix": ["archive/*"]}}},
        {"Sid": "WriteAlertCrops", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:PutObjectTagging"],
         "Resource": [f"arn:aws:s3:::{s.evidence_bucket}/crops/*"]},
        {"Sid": "ReadWatchlists", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:Query"],
         "Resource": [_arn("WatchlistsTable"), _arn("SubjectsTable")]},
        {"Sid": "ReadWatchlistSnapshots", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{s.evidence_bucket}/snapshots/*"]},
        {"Sid": "CountOnDeployment", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": [_arn("DeploymentsTable")]},
        {"Sid": "WriteAlerts", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": [_arn("AlertsTable")]},
        {"Sid": "QueueAlerts", "Effect": "Allow",
         "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": [_arn("AlertsQueue")]},
        {"Sid": "UseDataKey", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": [_arn(KEY)]},
    ]}
    names = {t.logical for t in sp.tables}
    if "AuditTable" in names:
        job_policy["Statement"].append({"Sid": "AppendAudit", "Effect": "Allow",
                                        "Action": ["dynamodb:PutItem"],
                                        "Resource": [_arn("AuditTable")]})
    if "SightingsTable" in names:
        job_policy["Statement"].append({
            "Sid": "Sightings", "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                       "dynamodb:Query"],
            "Resource": [_arn("SightingsTable"),
                         {"Fn::Sub": "${SightingsTable.Arn}/index/*"}]})
    if "TracksTable" in names:
        job_policy["Statement"].append({
            "Sid": "CameraTracks", "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
            "Resource": [_arn("TracksTable")]})
        job_policy["Statement"].append({
            "Sid": "BatchReads", "Effect": "Allow", "Action": ["dynamodb:BatchGetItem"],
            "Resource": [_arn("DeploymentsTable"), _arn("WatchlistsTable"),
                         _arn("TracksTable")]})
    def role(service: str, **props: Any) -> dict[str, Any]:
        return {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": service},
                "Action": "sts:AssumeRole"}]}, **props}}

    return {
        "BatchRepository": {"Type": "AWS::ECR::Repository", "Properties": {
            "RepositoryName": f"{s.prefix}-batch",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "IMMUTABLE",
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": _arn(KEY)}}},
        "BatchJobRole": role("ecs-tasks.amazonaws.com", Policies=[
            {"PolicyName": "lfr-batch-job", "PolicyDocument": job_policy}]),
        "BatchInstanceRole": role("ec2.amazonaws.com", ManagedPolicyArns=[
            _sub("arn:${AWS::Partition}:iam::aws:policy/service-role/"
                 "AmazonEC2ContainerServiceforEC2Role")]),
        "BatchInstanceProfile": {"Type": "AWS::IAM::InstanceProfile",
                                 "Properties": {"Roles": [{"Ref": "BatchInstanceRole"}]}},
        "GpuComputeEnvironment": {"Type": "AWS::Batch::ComputeEnvironment", "Properties": {
            "Type": "MANAGED", "State": "ENABLED",
            "ComputeResources": {
                "Type": "EC2", "AllocationStrategy": "BEST_FIT_PROGRESSIVE",
                "MinvCpus": 0, "MaxvCpus": {"Ref": "BatchMaxVcpus"},
                "InstanceTypes": GPU_INSTANCE_TYPES,
                "Subnets": {"Ref": "BatchSubnets"},
                "SecurityGroupIds": {"Ref": "BatchSecurityGroups"},
                "InstanceRole": _arn("BatchInstanceProfile"),
                "Ec2Configuration": [{"ImageType": "ECS_AL2023_NVIDIA"}],
                "Tags": {"app": "lfr", "stage": s.stage}}}},
        "GpuJobQueue": {"Type": "AWS::Batch::JobQueue", "Properties": {
            "JobQueueName": f"{s.prefix}-gpu", "Priority": 1, "State": "ENABLED",
            "ComputeEnvironmentOrder": [
                {"Order": 1, "ComputeEnvironment": {"Ref": "GpuComputeEnvironment"}}]}},
        "BatchJobDefinition": {"Type": "AWS::Batch::JobDefinition", "Properties": {
            "JobDefinitionName": f"{s.prefix}-batch", "Type": "container",
            "Parameters": {"bucket": s.frames_bucket, "key": "archive/"},
            "RetryStrategy": {"Attempts": 2},
            "Timeout": {"AttemptDurationSeconds": 6 * 3600},
            "ContainerProperties": {
                "Image": {"Ref": "BatchImage"},
                "Command": ["lfr", "batch", "--bucket", "Ref::bucket", "--key", "Ref::key"],
                "JobRoleArn": _arn("BatchJobRole"),
                "ResourceRequirements": [{"Type": "GPU", "Value": "1"},
                                         {"Type": "VCPU", "Value": "4"},
                                         {"Type": "MEMORY", "Value": "15000"}],
                "Environment": [{"Name": "LFR_STAGE", "Value": s.stage},
                                {"Name": "AWS_REGION", "Value": _sub("${AWS::Region}")},
                                {"Name": "POWERTOOLS_SERVICE_NAME", "Value": "lfr-batch"}],
                "ReadonlyRootFilesystem": False}}},
        "ArchiveRuleRole": role("events.amazonaws.com", Policies=[{
            "PolicyName": "submit-batch-job", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": ["batch:SubmitJob"],
                    "Resource": [{"Ref": "GpuJobQueue"}, {"Ref": "BatchJobDefinition"}]}]}}]),
        "ArchiveUploadedRule": {"Type": "AWS::Events::Rule", "Properties": {
            "Description": "footage uploaded under archive/ -> lfr batch on a GPU",
            "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"],
                             "detail": {"bucket": {"name": [s.frames_bucket]},
                                        "object": {"key": [{"prefix": "archive/"}]}}},
            "Targets": [{
                "Id": "lfr-batch", "Arn": {"Ref": "GpuJobQueue"},
                "RoleArn": _arn("ArchiveRuleRole"),
                "BatchParameters": {"JobDefinition": {"Ref": "BatchJobDefinition"},
                                    "JobName": f"{s.prefix}-archive"},
                "InputTransformer": {
                    "InputPathsMap": {"bucket": "$.detail.bucket.name",
                                      "key": "$.detail.object.key"},
                    "InputTemplate": '{"Parameters": {"bucket": <bucket>, "key": <key>}}'},
                "RetryPolicy": {"MaximumRetryAttempts": 10}}]}},
    }


PARAMETERS = {
    "BatchImage": {"Type": "String", "Description": "GPU image for lfr batch (docker/batch)"},
    "BatchSubnets": {"Type": "List<AWS::EC2::Subnet::Id>",
                     "Description": "private subnets for the GPU instances"},
    "BatchSecurityGroups": {"Type": "List<AWS::EC2::SecurityGroup::Id>",
                            "Description": "egress-only security groups for the GPU instances"},
    "BatchMaxVcpus": {"Type": "Number", "Default": 16, "MinValue": 0},
}


def resources(stage: str) -> dict[str, Any]:
    sp = spec_mod.build(spec_mod.stage_settings(stage))
    return {**kms(sp), **queues(sp), **buckets(sp), **tables(sp), **topic(sp), **alarms(sp),
            **users(sp), **batch(sp), **link_secret(sp)}


def outputs(stage: str) -> dict[str, Any]:
    return {
        "DataKeyArn": {"Value": _arn(KEY)},
        "FramesQueueUrl": {"Value": {"Ref": "FramesQueue"}},
        "AlertsQueueUrl": {"Value": {"Ref": "AlertsQueue"}},
        "DeploymentTopicArn": {"Value": {"Ref": "DeploymentTopic"}},
        "OpsTopicArn": {"Value": {"Ref": "OpsTopic"}},
        "UserPoolArn": {"Value": {"Fn::GetAtt": ["UserPool", "Arn"]}},
        "UserPoolClientId": {"Value": {"Ref": "UserPoolClient"}},
        "GpuJobQueueArn": {"Value": {"Ref": "GpuJobQueue"}},
        "BatchRepositoryUri": {"Value": {"Fn::GetAtt": ["BatchRepository", "RepositoryUri"]}},
    }


def infra_template(stage: str) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"lfr {stage}: everything beyond the Lambda functions",
        # Commercial regions only: Cognito (the API's identities) is not offered in AWS China.
        "Metadata": {"cfn-lint": {"config": {"regions": [
            "eu-west-2", "eu-west-1", "eu-central-1", "us-east-1", "us-west-2"]}}},
        "Parameters": PARAMETERS,
        "Resources": resources(stage),
        "Outputs": outputs(stage),
    }


def _function_name(handler: str) -> str:
    """Chalice's config name of a function from its handler ("app.app" is the REST API's)."""
    name = handler.split(".", 1)[1]
    return "api_handler" if name == "app" else name


def merge_template(stage: str, chalice_sam: dict[str, Any], layer_uri: str) -> dict[str, Any]:
    """Merged over `chalice package` output (`chalice_sam`, read to find its logical ids)."""
    sp = spec_mod.build(spec_mod.stage_settings(stage))
    queue_logical = {q.name: q.logical for q in sp.queues}
    res: dict[str, Any] = resources(stage)
    res["InferenceLayer"] = {"Type": "AWS::Serverless::LayerVersion", "Properties": {
        "LayerName": f"lfr-{stage}-inference", "ContentUri": layer_uri,
        "CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["arm64"],
        "RetentionPolicy": "Retain"}}
    for logical, r in chalice_sam["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        props = r["Properties"]
        fn = _function_name(props["Handler"])
        override: dict[str, Any] = {"Layers": [{"Ref": "InferenceLayer"}]}
        events = {}
        for ev_name, ev in props.get("Events", {}).items():
            if ev["Type"] != "SQS":
                continue
            queue = ev["Properties"]["Queue"]["Fn::Sub"].rsplit(":", 1)[1]
            if queue not in queue_logical:
                raise KeyError(f"{fn} reads queue {queue}, which infra/spec.py does not define")
            # The merge is deep: replace the Fn::Sub string, so the ARN comes from the queue
            # resource (an implicit dependency) rather than being spelled out.
            events[ev_name] = {"Type": "SQS", "Properties": {
                "Queue": {"Fn::Sub": "${" + queue_logical[queue] + ".Arn}"},
                "BatchSize": ev["Properties"].get("BatchSize", 10),
                "FunctionResponseTypes": ["ReportBatchItemFailures"]}}
        if events:
            override["Events"] = events
        res[logical] = {"Properties": override}
        for a in sp.alarms:
            if a.function == fn:
                # chalice package leaves the name to CloudFormation: the alarm takes it by Ref.
                res[a.logical]["Properties"]["Dimensions"] = [
                    {"Name": a.dimension[0], "Value": {"Ref": logical}}]
        role = props["Role"]["Fn::GetAtt"][0]
        res[role] = {"Properties": {"Policies": [{
            "PolicyName": f"{role}Policy",
            "PolicyDocument": policies.cfn_policy(fn, stage, KEY)}]}}
    return {"Parameters": PARAMETERS, "Resources": res, "Outputs": outputs(stage)}
