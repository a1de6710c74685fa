"""Least-privilege IAM policy per Lambda function, written as `.chalice/policy-<stage>-<fn>.json`.

No wildcard actions; every resource is named (table, queue, bucket prefix, topic, platform
application). Static files (chalice deploy) name the account as `*` unless --account is given
(infra/deploy.py fills in the real one); the CloudFormation rendering (infra/cfn.py) uses
${AWS::AccountId}. The KMS key's id is unknown before it exists, so static files allow it by its
alias (condition kms:ResourceAliases); the CloudFormation rendering names the key itself.

Every function of the app must have an entry in PERMISSIONS: `python -m infra.policies --check`
(run by `make package` and the tests) fails on a function with none, so a new handler never
deploys with a guessed policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib import queue_timing
from chalicelib.names import dlq_name
from chalicelib.store.tables import SWEEP_INDEX
from infra import spec as spec_mod

REPO = Path(__file__).resolve().parents[1]
CHALICE_DIR = REPO / ".chalice"
CONFIG = CHALICE_DIR / "config.json"

Arn = Callable[[str], str]


class Arns:
    """ARN templates; `{region}` and `{account}` are filled in by the renderer."""

    def __init__(self, sp: spec_mod.Spec) -> None:
        self.sp = sp
        self.s = sp.settings

    def table(self, name: str) -> str:
        return f"arn:aws:dynamodb:{{region}}:{{account}}:table/{name}"

    def queue(self, name: str) -> str:
        return f"arn:aws:sqs:{{region}}:{{account}}:{name}"

    def objects(self, bucket: str, prefix: str) -> str:
        return f"arn:aws:s3:::{bucket}/{prefix}*"

    def topic(self) -> str:
        return f"arn:aws:sns:{{region}}:{{account}}:{self.s.deployment_topic}"

    def platform_apps(self) -> list[str]:
        return [f"arn:aws:sns:{{region}}:{{account}}:app/{n.rsplit('-', 1)[1].upper()}/{n}"
                for n in self.sp.platform_apps]

    def platform_endpoints(self) -> list[str]:
        return [f"arn:aws:sns:{{region}}:{{account}}:endpoint/{n.rsplit('-', 1)[1].upper()}/{n}/*"
                for n in self.sp.platform_apps]

    def t(self, short: str) -> str:
        return self.table(f"{self.s.table_prefix}-{short}")

    def has(self, short: str) -> bool:
        return any(t.name == f"{self.s.table_prefix}-{short}" for t in self.sp.tables)


def _audit_and_sightings(a: Arns) -> list[dict[str, Any]]:
    out = []
    if a.has("audit"):
        out.append(_stmt("AppendAudit", ["dynamodb:PutItem"], [a.t("audit")]))
    if a.has("sightings"):
        # Read and written back under a version condition (alerts/sightings.py).
        out.append(_stmt("Sightings", ["dynamodb:GetItem", "dynamodb:PutItem"],
                         [a.t("sightings")]))
    if a.has("tracks"):
        # A camera's track state, written in one transaction with the deployment's counters
        # and the batch's applied id (its own table).
        out.append(_stmt("CameraTracks", ["dynamodb:GetItem", "dynamodb:PutItem"],
                         [a.t("tracks"), *([a.t("applied")] if a.has("applied") else [])]))
    return out


def _stmt(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def _list(bucket: str, prefixes: list[str],
          sid: str = "ListWatchlistObjects") -> dict[str, Any]:
    # Destroying a watchlist sweeps its prefixes (ops/snapshots.py delete_prefix).
    stmt = _stmt(sid, ["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"])
    stmt["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return stmt


def _consume(queue: str, a: Arns) -> dict[str, Any]:
    # Receive, delete, attributes: the event source mapping's, with this role. The code itself
    # shortens a failed record's wait (deadletter.retry_soon), after resolving the queue's URL.
    return _stmt("ConsumeQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                  "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
                                  "sqs:GetQueueUrl"],
                 [a.queue(queue)])


def _dead_letter(queue: str, a: Arns) -> dict[str, Any]:
    # A message that fails its last try is sent to the DLQ with its reason (deadletter.py).
    return _stmt("DeadLetterWithReason", ["sqs:SendMessage", "sqs:GetQueueUrl"],
                 [a.queue(dlq_name(queue))])


def frames_worker(a: Arns) -> list[dict[str, Any]]:
    s = a.s
    return [
        _consume(s.frames_queue, a),
        _dead_letter(s.frames_queue, a),
        _stmt("ReadAndDeleteFrameBatches", ["s3:GetObject", "s3:DeleteObject"],
              [a.objects(s.frames_bucket, "frames/")]),
        _stmt("WriteAlertCrops", ["s3:PutObject", "s3:PutObjectTagging"],
              [a.objects(s.evidence_bucket, "crops/")]),
        # A container's list: its row, then the snapshot; the subject rows only where the
        # snapshot is refused (ops/watchlist_index.py).
        _stmt("ReadWatchlists", ["dynamodb:GetItem"], [a.t("watchlists")]),
        _stmt("ReadSubjectsWithoutSnapshot", ["dynamodb:Query"], [a.t("subjects")]),
        # The packed templates a cold start loads (ops/snapshots.py).
        _stmt("ReadWatchlistSnapshots", ["s3:GetObject"],
              [a.objects(s.evidence_bucket, "snapshots/")]),
        _stmt("CountOnDeployment", ["dynamodb:GetItem", "dynamodb:UpdateItem"],
              [a.t("deployments")]),
        # store/batch_reads.py: deployment, watchlist version and camera tracks in one read.
        _stmt("BatchReads", ["dynamodb:BatchGetItem"],
              [a.t("deployments"), a.t("watchlists"),
               *([a.t("tracks")] if a.has("tracks") else []),
               *([a.t("applied")] if a.has("applied") else [])]),
        _stmt("WriteAlerts", ["dynamodb:GetItem", "dynamodb:PutItem"], [a.t("alerts")]),
        # powertools: a conditional put (a duplicate's record comes back with its failed
        # condition, no GetItem), the result saved, the claim deleted when the batch failed.
        # (powertools reads with GetItem only under a boto3 older than 1.26.164; the function
        # takes the python3.12 runtime's, newer.)
        _stmt("Idempotency", ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
              [a.t("idempotency")]),
        _stmt("QueueAlerts", ["sqs:SendMessage", "sqs:GetQueueUrl"], [a.queue(s.alerts_queue)]),
        *_audit_and_sightings(a),
    ]


def _link_secret(a: Arns) -> dict[str, Any]:
    # The key that signs alert links (chalicelib/link_secret.py); Secrets Manager adds six
    # random characters to a secret's ARN.
    return _stmt("ReadLinkSecret", ["secretsmanager:GetSecretValue"],
                 [f"arn:aws:secretsmanager:{{region}}:{{account}}:secret:"
                  f"{a.s.link_secret_name}-*"])


def alerts_notifier(a: Arns) -> list[dict[str, Any]]:
    s = a.s
    return [
        _link_secret(a),
        _consume(s.alerts_queue, a),
        _dead_letter(s.alerts_queue, a),
        _stmt("ClaimAlerts", ["dynamodb:GetItem", "dynamodb:UpdateItem"], [a.t("alerts")]),
        _stmt("FindDevices", ["dynamodb:Query"], [a.t("devices")]),
        _stmt("PushToOfficers", ["sns:Publish"], [a.topic(), *a.platform_endpoints()]),
    ]


def api_handler(a: Arns) -> list[dict[str, Any]]:
    # Every route shares one function (Chalice's api_handler): the operator and officer API
    # (watchlists, enrollment, deployments, camera grants, devices, alerts, adjudication, audit).
    # Only what the routes call (tests/integration/test_least_privilege.py records them): no
    # Scan, no batch writes, no deletion of alerts, sightings, tracks or crops (evidence).
    s = a.s
    g, p_, u, q = "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"
    return [
        _link_secret(a),
        _stmt("Watchlists", [g, p_, u], [a.t("watchlists")]),
        # A subject's removal deletes its row (ops/watchlists.remove_subject).
        _stmt("Subjects", [g, p_, q, "dynamodb:DeleteItem"], [a.t("subjects")]),
        # Deleted only when its watchlist was bound elsewhere meanwhile (create_deployment).
        _stmt("Deployments", [g, p_, u, "dynamodb:DeleteItem"], [a.t("deployments")]),
        _stmt("Devices", [p_], [a.t("devices")]),
        _stmt("Alerts", [g, u], [a.t("alerts")]),
        _stmt("AlertsByDeployment", [q], [a.t("alerts") + "/index/by-deployment"]),
        _stmt("Cameras", [g, q, u], [a.t("cameras")]),
        _stmt("AuditAppendAndRead", [p_, q], [a.t("audit")]),
        _stmt("ReferenceImages", ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
              [a.objects(s.evidence_bucket, "references/")]),
        # Written at authorisation and when an authorised list changes; swept at destruction.
        _stmt("WatchlistSnapshots", ["s3:PutObject", "s3:DeleteObject"],
              [a.objects(s.evidence_bucket, "snapshots/")]),
        _list(s.evidence_bucket, ["snapshots/"]),
        # Presigned for the officer's view: read only.
        _stmt("AlertCrops", ["s3:GetObject"], [a.objects(s.evidence_bucket, "crops/")]),
        # Camera upload grants are presigned POSTs: signed by this role, scoped to frames/.
        _stmt("CameraGrants", ["s3:PutObject"], [a.objects(s.frames_bucket, "frames/")]),
        _stmt("CreatePushEndpoints", ["sns:CreatePlatformEndpoint"], a.platform_apps()),
        _stmt("UpdatePushEndpoints", ["sns:SetEndpointAttributes"], a.platform_endpoints()),
    ]


def retention_sweep(a: Arns) -> list[dict[str, Any]]:
    # Destroys watchlists after their deployment, expired crops, alerts' pixels and sightings.
    # Only what it calls (tests/integration/test_least_privilege.py records them): due items
    # through the sparse sweep-due indexes, never a Scan.
    s = a.s
    g, u, q, d = "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:DeleteItem"
    due = [a.t(t) + f"/index/{SWEEP_INDEX}"
           for t in ("watchlists", "deployments", "alerts", "sightings", "tracks")]
    return [
        _stmt("SweepDue", [q], due),
        _stmt("Watchlists", [g, u], [a.t("watchlists")]),
        _stmt("DestroySubjects", [q, d], [a.t("subjects")]),
        _stmt("Deployments", [g, u], [a.t("deployments")]),
        _stmt("MarkCropsDeleted", [u], [a.t("alerts")]),
        _stmt("ExpireSightingsAndTracks", [d], [a.t("sightings"), a.t("tracks")]),
        _stmt("AppendAudit", ["dynamodb:PutItem"], [a.t("audit")]),
        _stmt("ExpireEvidence", ["s3:DeleteObject"],
              [a.objects(s.evidence_bucket, "crops/"),
               a.objects(s.evidence_bucket, "references/"),
               a.objects(s.evidence_bucket, "snapshots/")]),
        _list(s.evidence_bucket, ["references/", "snapshots/"]),
        # A dead-lettered batch's frames, once past their hold (ops/retention.py).
        _stmt("ExpireHeldFrames", ["s3:DeleteObject"], [a.objects(s.frames_bucket, "frames/")]),
        _list(s.frames_bucket, ["frames/"], "ListHeldFrames"),
    ]


def camera_watch(a: Arns) -> list[dict[str, Any]]:
    # Reads running deployments' camera health, pushes a dark camera to the officers' phones
    # once per dark spell, records that it did (ops/camera_health.py).
    return [
        _stmt("OpenDeployments", ["dynamodb:Query"],
              [f"{a.t('deployments')}/index/{SWEEP_INDEX}"]),
        _stmt("CameraHealth", ["dynamodb:Query", "dynamodb:UpdateItem"], [a.t("cameras")]),
        _stmt("FindDevices", ["dynamodb:Query"], [a.t("devices")]),
        _stmt("PushToOfficers", ["sns:Publish"], a.platform_endpoints()),
        _stmt("AppendAudit", ["dynamodb:PutItem"], [a.t("audit")]),
    ]


PERMISSIONS: dict[str, Callable[[Arns], list[dict[str, Any]]]] = {
    "frames_worker": frames_worker,
    "alerts_notifier": alerts_notifier,
    "api_handler": api_handler,
    "retention_sweep": retention_sweep,
    "camera_watch": camera_watch,
}


def app_functions(app: Any) -> list[str]:
    """The Lambda functions `chalice deploy` makes of the app, by their config names."""
    names = [src.name for src in app.event_sources]
    names += [fn.name for fn in getattr(app, "pure_lambda_functions", [])]
    if app.routes:
        names.append("api_handler")
    if getattr(app, "websocket_handlers", None):
        names.append("websocket_handler")
    return sorted(set(names))


def statements(fn: str, sp: spec_mod.Spec) -> list[dict[str, Any]]:
    if fn not in PERMISSIONS:
        raise KeyError(
            f"no IAM permissions defined for function {fn!r}: add it to PERMISSIONS in "
            "infra/policies.py (least privilege, named resources), then run "
            "`python -m infra.policies`"
        )
    return PERMISSIONS[fn](Arns(sp))


def _logs(fn: str, prefix: str) -> dict[str, Any]:
    # Chalice names the REST API's function after the app (lfr-<stage>), the others lfr-<stage>-<fn>
    group = prefix if fn == "api_handler" else f"{prefix}-{fn}"
    return _stmt("Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                 [f"arn:aws:logs:{{region}}:{{account}}:log-group:/aws/lambda/{group}",
                  f"arn:aws:logs:{{region}}:{{account}}:log-group:/aws/lambda/{group}:*"])


def _fill(obj: Any, region: str, account: str) -> Any:
    if isinstance(obj, str):
        return obj.replace("{region}", region).replace("{account}", account)
    if isinstance(obj, list):
        return [_fill(x, region, account) for x in obj]
    if isinstance(obj, dict):
        return {k: _fill(v, region, account) for k, v in obj.items()}
    return obj


def static_policy(fn: str, stage: str, account: str = "*") -> dict[str, Any]:
    """The policy document for chalice deploy (iam_policy_file)."""
    sp = spec_mod.build(spec_mod.stage_settings(stage))
    stmts = [_logs(fn, f"lfr-{stage}"), *statements(fn, sp)]
    kms = _stmt("UseDataKey", ["kms:Decrypt", "kms:GenerateDataKey"],
                ["arn:aws:kms:{region}:{account}:key/*"])
    kms["Condition"] = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": sp.kms_alias}}
    stmts.append(kms)
    return {"Version": "2012-10-17",
            "Statement": _fill(stmts, sp.settings.region, account)}


def cfn_policy(fn: str, stage: str, key_logical: str = "DataKey") -> dict[str, Any]:
    """The same policy with ${AWS::Region}/${AWS::AccountId} and the key's ARN, for templates."""
    sp = spec_mod.build(spec_mod.stage_settings(stage))
    stmts = [_logs(fn, f"lfr-{stage}"), *statements(fn, sp)]
    stmts = _fill(stmts, "${AWS::Region}", "${AWS::AccountId}")

    def sub(obj: Any) -> Any:
        if isinstance(obj, str) and "${" in obj:
            return {"Fn::Sub": obj}
        if isinstance(obj, list):
            return [sub(x) for x in obj]
        if isinstance(obj, dict):
            return {k: (sub(v) if k == "Resource" else v) for k, v in obj.items()}
        return obj

    stmts = [sub(st) for st in stmts]
    stmts.append(_stmt("UseDataKey", ["kms:Decrypt", "kms:GenerateDataKey"],
                       [{"Fn::GetAtt": [key_logical, "Arn"]}]))
    return {"Version": "2012-10-17", "Statement": stmts}


def policy_file(stage: str, fn: str) -> Path:
    return CHALICE_DIR / f"policy-{stage}-{fn}.json"


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2) + "\n"


def wildcard_actions(policy: dict[str, Any]) -> list[str]:
    return [a for st in policy["Statement"] for a in st["Action"] if "*" in a]


def render_all(functions: list[str]) -> dict[Path, str]:
    """Every policy file and the config.json they are wired into, as they should be on disk."""
    out: dict[Path, str] = {}
    config = json.loads(CONFIG.read_text())
    # The functions' timeouts, from the one place the queues' visibility is derived from.
    config["lambda_timeout"] = queue_timing.DEFAULT_TIMEOUT_S
    for stage in spec_mod.STAGES:
        entry = config["stages"].setdefault(stage, {})
        entry.pop("lambda_timeout", None)
        lambdas = entry.setdefault("lambda_functions", {})
        for fn in functions:
            out[policy_file(stage, fn)] = _dump(static_policy(fn, stage))
            lambdas.setdefault(fn, {})["iam_policy_file"] = policy_file(stage, fn).name
            if fn in queue_timing.FUNCTION_TIMEOUT_S:
                lambdas[fn]["lambda_timeout"] = queue_timing.FUNCTION_TIMEOUT_S[fn]
            else:
                lambdas[fn].pop("lambda_timeout", None)
    out[CONFIG] = _dump(config)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.policies", description=__doc__)
    p.add_argument("--check", action="store_true", help="fail if a file is missing or stale")
    args = p.parse_args(argv)
    from chalicelib.local.pump import load_app

    functions = app_functions(load_app())
    try:
        wanted = render_all(functions)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"stale or missing: {p.relative_to(REPO)} (run `python -m infra.policies`)",
                  file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(REPO)}")
    print(f"policies for {', '.join(functions)} in stages {', '.join(spec_mod.STAGES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
