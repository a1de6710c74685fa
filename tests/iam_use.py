"""What a function's code does with AWS, as IAM sees it (issue 22 item 5).

`recording()` records every AWS call made in this process while it is active (botocore's
`_make_api_call`, which boto3 and pynamodb both go through) and the presigned URLs and POSTs
the API hands out (signed by the function's role: the holder acts with its permissions). Each
is turned into the IAM (action, resource ARN) pairs it needs. `recording_functions()` does the
same for each queue consumer the local pump invokes, on its own. `unused_grants` and `ungranted`
compare them with a policy's statements.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
from collections.abc import Iterator
from typing import Any

from botocore.client import BaseClient

from chalicelib import names

Use = tuple[str, str]  # (IAM action, resource ARN)


def _table(region: str, name: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{region}:*:table/{name}"
    return f"{arn}/index/{index}" if index else arn


_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem"}


def uses(service: str, operation: str, params: dict[str, Any], region: str) -> list[Use]:
    """The IAM (action, resource) pairs one call needs."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return [(f"dynamodb:{_TRANSACT[kind]}", _table(region, body["TableName"]))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", _table(region, t)) for t in params["RequestItems"]]
        return [(f"dynamodb:{operation}",
                 _table(region, params["TableName"], params.get("IndexName")))]
    if service == "s3":
        bucket = params.get("Bucket", "")
        if operation in ("ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}?prefix={params.get('Prefix', '')}")]
        if operation == "DeleteObjects":
            return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}")
                    for o in params["Delete"]["Objects"]]
        action = {"HeadObject": "GetObject", "PutObjectTagging": "PutObjectTagging"}.get(
            operation, operation)
        arn = f"arn:aws:s3:::{bucket}/{params.get('Key', '')}"
        if operation == "PutObject" and params.get("Tagging"):
            # An upload that tags its object (x-amz-tagging) needs s3:PutObjectTagging too
            # (Amazon S3 User Guide, "Categorizing your storage using tags").
            return [("s3:PutObject", arn), ("s3:PutObjectTagging", arn)]
        return [(f"s3:{action}", arn)]
    if service == "sqs":
        name = str(params.get("QueueUrl", params.get("QueueName", ""))).rsplit("/", 1)[-1]
        return [(f"sqs:{operation}", f"arn:aws:sqs:{region}:*:{name}")]
    if service == "sns":
        return [(f"sns:{operation}", params.get("TopicArn") or params.get("TargetArn")
                 or params.get("PlatformApplicationArn") or params.get("EndpointArn", ""))]
    if service == "secretsmanager":  # its ARN ends in six random characters
        name = params.get("SecretId", "")
        return [(f"secretsmanager:{operation}",
                 f"arn:aws:secretsmanager:{region}:*:secret:{name}-AbCdEf")]
    return [(f"{service}:{operation}", "*")]


@contextlib.contextmanager
def recording(region: str) -> Iterator[list[Use]]:
    import chalicelib.api as api_mod
    import chalicelib.ops.cameras as cameras_mod

    got: list[Use] = []
    call, presign = BaseClient._make_api_call, api_mod._presign
    grant = cameras_mod.camera_upload_grant

    def hooked(self: Any, operation: str, params: dict[str, Any]) -> Any:
        got.extend(uses(self.meta.service_model.service_name, operation, params, region))
        return call(self, operation, params)

    def presigned(s3: Any, bucket: str, key: str) -> str:
        got.append(("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"))
        return presign(s3, bucket, key)

    def granted(s3: Any, bucket: str, deployment_id: str, camera_id: str,
                *a: Any, **k: Any) -> Any:
        got.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/frames/{deployment_id}/"
                                    f"{camera_id}/000000000000.lfrb"))
        return grant(s3, bucket, deployment_id, camera_id, *a, **k)

    BaseClient._make_api_call = hooked  # type: ignore[method-assign]
    api_mod._presign, api_mod.camera_upload_grant = presigned, granted  # type: ignore[assignment]
    try:
        yield got
    finally:
        BaseClient._make_api_call = call  # type: ignore[method-assign]
        api_mod._presign, api_mod.camera_upload_grant = presign, grant  # type: ignore[assignment]


# What an SQS event source mapping does with the function's role: Lambda polls the queue and
# deletes what the function handled ("Lambda needs the following permissions to manage messages
# in your Amazon SQS queue: sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes",
# AWS Lambda Developer Guide, "Using Lambda with Amazon SQS"). Not the code's calls, but its
# role's: the local pump plays them.
EVENT_SOURCE_MAPPING = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def polled(queue: str, region: str) -> list[Use]:
    return [(action, f"arn:aws:sqs:{region}:*:{queue}") for action in EVENT_SOURCE_MAPPING]


@dataclasses.dataclass
class Functions:
    """What each of the pump's functions used, and the events it was handed."""

    uses: dict[str, list[Use]]
    events: dict[str, list[dict[str, Any]]]


@contextlib.contextmanager
def recording_functions(pump: Any, region: str) -> Iterator[Functions]:
    """While active, each of the pump's handlers (chalicelib/local/pump.py) is recorded on its
    own, under its function's name, with the event source mapping's part on its queue: only
    what the handler's code calls, not the pump's own reads of the queues, as from a container
    of its own (the queue URLs it resolves and caches, resolved again). Needs the pump run in
    this thread (drain), one invocation at a time."""
    got = Functions({m.function_name: [] for m in pump.mappings},
                    {m.function_name: [] for m in pump.mappings})
    real = list(pump.mappings)

    def recorded(m: Any) -> Any:
        def handler(event: dict[str, Any], context: Any) -> Any:
            # Each function has containers of its own: what one resolved and cached (queue
            # URLs) another resolves itself.
            names.reset()
            got.events[m.function_name].append(event)
            got.uses[m.function_name].extend(polled(m.queue_name, region))
            with recording(region) as used:
                try:
                    return m.handler(event, context)
                finally:
                    got.uses[m.function_name].extend(used)
        return dataclasses.replace(m, handler=handler)

    pump.mappings = [recorded(m) for m in real]
    try:
        yield got
    finally:
        pump.mappings = real


def _allows(stmt: dict[str, Any], use: Use) -> bool:
    """Resources as the policy names them, its account filled in as `*` (as recorded)."""
    action, resource = use
    if action not in stmt["Action"]:
        return False
    if action == "s3:ListBucket":
        bucket, _, prefix = resource.partition("?prefix=")
        patterns = stmt.get("Condition", {}).get("StringLike", {}).get("s3:prefix", ["*"])
        return bucket in stmt["Resource"] and any(fnmatch.fnmatchcase(prefix, p)
                                                  for p in patterns)
    return any(fnmatch.fnmatchcase(resource, r) for r in stmt["Resource"])


def unused_grants(statements: list[dict[str, Any]], used: list[Use],
                  ignore: frozenset[str] = frozenset()) -> list[str]:
    """Each (statement, action, resource) of the policy that no recorded use needs."""
    out = []
    for st in statements:
        if st["Sid"] in ignore:
            continue
        for action in st["Action"]:
            for res in st["Resource"]:
                single = {**st, "Action": [action], "Resource": [res]}
                if not any(_allows(single, u) for u in used):
                    out.append(f"{st['Sid']}: {action} on {res}")
    return out


# Needs no permission: "No permissions are required to perform this operation" (STS API).
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


def ungranted(statements: list[dict[str, Any]], used: list[Use]) -> list[Use]:
    return sorted({u for u in used if u[0] not in ALWAYS_ALLOWED
                   and not any(_allows(st, u) for st in statements)})
