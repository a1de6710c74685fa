"""One declarative description of what the app needs beyond its functions.

Everything is derived from the same sources the app and the local stack use: resource names from
Settings, key schemas from the pynamodb models (store/tables.py), S3 prefixes from store/layout.py,
queue settings from local/resources.py. infra/cfn.py turns it into CloudFormation and
infra/policies.py into per-function IAM policies; local/resources.py creates the same resources
through the APIs on moto server or LocalStack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib import monitoring
from chalicelib.local import resources
from chalicelib.ops.deployments import PLATFORMS
from chalicelib.settings import Settings
from chalicelib.store import layout
from chalicelib.store.tables import idempotency_table_name, tables

REGION = "eu-west-2"
STAGES = ("dev", "prod", "local")
# Archives of footage are kept no longer than alert crops (policy: footage at most 31 days).
FRAMES_EXPIRY_DAYS = 1


@dataclass(frozen=True)
class Queue:
    logical: str
    name: str
    dlq: str
    visibility_s: int
    max_receive_count: int = resources.MAX_RECEIVE_COUNT


@dataclass(frozen=True)
class Rule:
    prefix: str
    days: int


@dataclass(frozen=True)
class Bucket:
    logical: str
    name: str
    lifecycle: tuple[Rule, ...]
    # prefix -> logical name of the queue notified on ObjectCreated
    notify: dict[str, str] = field(default_factory=dict)
    eventbridge: bool = False


@dataclass(frozen=True)
class Table:
    logical: str
    name: str
    schema: dict[str, Any]
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class Spec:
    settings: Settings
    buckets: tuple[Bucket, ...]
    queues: tuple[Queue, ...]
    tables: tuple[Table, ...]
    topic: str
    platform_apps: tuple[str, ...]
    ops_topic: str = ""
    alarms: tuple[monitoring.Alarm, ...] = ()

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.settings.prefix}"


def stage_settings(stage: str) -> Settings:
    return Settings.from_env({"LFR_STAGE": stage, "AWS_REGION": REGION})


def _logical(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def build(s: Settings) -> Spec:
    frames_q = Queue("FramesQueue", s.frames_queue, resources.dlq_name(s.frames_queue),
                     resources.FRAMES_VISIBILITY_S)
    alerts_q = Queue("AlertsQueue", s.alerts_queue, resources.dlq_name(s.alerts_queue),
                     resources.ALERTS_VISIBILITY_S)
    buckets = (
        Bucket(
            "FramesBucket", s.frames_bucket,
            (Rule(layout.FRAMES_PREFIX, FRAMES_EXPIRY_DAYS),
             Rule(layout.ARCHIVE_PREFIX, s.crop_retention_days)),
            notify={layout.FRAMES_PREFIX: frames_q.logical},
            eventbridge=True,  # archive/ uploads -> EventBridge -> AWS Batch job
        ),
        Bucket("EvidenceBucket", s.evidence_bucket,
               (Rule(layout.CROPS_PREFIX, s.crop_retention_days),)),
    )
    tbls = []
    for model in tables(s).all():
        name = model.Meta.table_name
        short = name.removeprefix(s.table_prefix + "-")
        tbls.append(Table(_logical(short) + "Table", name, model._get_schema(),
                          ttl_attribute=getattr(model, "TTL", None)))
    tbls.append(Table(
        "IdempotencyTable", idempotency_table_name(s),
        {"attribute_definitions": [{"AttributeName": "id", "AttributeType": "S"}],
         "key_schema": [{"AttributeName": "id", "KeyType": "HASH"}],
         "global_secondary_indexes": [], "local_secondary_indexes": []},
        ttl_attribute="expiration",
    ))
    return Spec(
        settings=s,
        buckets=buckets,
        queues=(frames_q, alerts_q),
        tables=tuple(tbls),
        topic=s.deployment_topic,
        platform_apps=tuple(f"{s.push_platform_app}-{p}" for p in PLATFORMS),
        ops_topic=s.ops_topic,
        alarms=tuple(monitoring.alarms(s)),
    )
