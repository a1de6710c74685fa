"""Every AWS resource the app needs, created through the ordinary APIs (moto, LocalStack, AWS).

Used by the local stack; the names come from Settings, the same ones the app resolves at run time.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib import clients, monitoring, queue_timing
from chalicelib.names import dlq_name
from chalicelib.ops.deployments import PLATFORMS
from chalicelib.settings import Settings
from chalicelib.store import layout
from chalicelib.store.tables import idempotency_table_name, tables

# Derived in one place (queue_timing.py): six times the consumer's timeout; SQS redrives a
# message one delivery after the handler's last try.
MAX_RECEIVE_COUNT = queue_timing.redrive_receive_count(Settings.max_receive_count)
FRAMES_VISIBILITY_S = queue_timing.visibility_timeout_s("frames")
ALERTS_VISIBILITY_S = queue_timing.visibility_timeout_s("alerts")


def _queue_with_dlq(sqs: Any, name: str, visibility: int) -> str:
    dlq_url = sqs.create_queue(QueueName=dlq_name(name))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    return sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": redrive},
    )["QueueUrl"]


def create_private_bucket(s3: Any, name: str, region: str) -> None:
    """A bucket in `region` with every kind of public access blocked."""
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # the one region that refuses its own LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})


def create_all(s: Settings) -> dict[str, str]:
    s3 = clients.client("s3", s)
    sqs = clients.client("sqs", s)
    sns = clients.client("sns", s)
    for bucket in (s.frames_bucket, s.evidence_bucket):
        create_private_bucket(s3, bucket, s.region)
    _lifecycle(s3, s.frames_bucket, layout.FRAMES_PREFIX, 1)
    _lifecycle(s3, s.evidence_bucket, layout.CROPS_PREFIX, s.crop_retention_days)
    frames_url = _queue_with_dlq(sqs, s.frames_queue, FRAMES_VISIBILITY_S)
    alerts_url = _queue_with_dlq(sqs, s.alerts_queue, ALERTS_VISIBILITY_S)
    _notify_uploads(s3, sqs, s.frames_bucket, frames_url)
    topic = sns.create_topic(Name=s.deployment_topic)["TopicArn"]
    # Operators hear of dead letters and failing functions (chalicelib/monitoring.py).
    ops_topic = sns.create_topic(Name=s.ops_topic)["TopicArn"]
    monitoring.create_alarms(clients.client("cloudwatch", s), s, ops_topic)
    _platform_apps(sns, s.push_platform_app)
    _tables(clients.client("dynamodb", s), s)
    return {"frames_queue_url": frames_url, "alerts_queue_url": alerts_url, "topic_arn": topic,
            "ops_topic_arn": ops_topic}


def _notify_uploads(s3: Any, sqs: Any, bucket: str, queue_url: str) -> None:
    """Every object created under frames/ is an event on the frames queue."""
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": layout.FRAMES_PREFIX}]}
                    },
                }
            ]
        },
    )


def _platform_apps(sns: Any, name: str) -> None:
    for platform in PLATFORMS:
        sns.create_platform_application(
            Name=f"{name}-{platform}",
            Platform=platform.upper(),
            # LocalStack, like AWS for APNs, wants the principal with the credential; moto takes
            # either. Placeholders: the local stacks deliver nothing beyond themselves.
            Attributes={"PlatformCredential": "local-placeholder",
                        "PlatformPrincipal": "local-placeholder"},
        )


def _tables(ddb: Any, s: Settings) -> None:
    """The app's tables (with their TTLs) and powertools' idempotency table."""
    for model in tables(s).all():
        model.create_table(wait=True)  # pynamodb creates it only where it does not exist
        if getattr(model, "TTL", None):
            _enable_ttl(ddb, model.Meta.table_name, model.TTL)
    ddb.create_table(
        TableName=idempotency_table_name(s),
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=idempotency_table_name(s),
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )


def _enable_ttl(ddb: Any, table: str, attribute: str) -> None:
    now = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if now.get("TimeToLiveStatus") != "ENABLED":  # enabling it twice is an error on AWS
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": attribute})


def _lifecycle(s3: Any, bucket: str, prefix: str, days: int) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": f"expire-{prefix.strip('/')}",
                    "Filter": {"Prefix": prefix},
                    "Status": "Enabled",
                    "Expiration": {"Days": days},
                }
            ]
        },
    )
