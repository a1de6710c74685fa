"""What operators are alarmed on, defined once: infra/cfn.py renders these as CloudFormation,
local/resources.py creates them through the CloudWatch API, infra/deploy.py checks them.

- Either dead-letter queue holding a message: a frame batch or an alert gave up after its
  retries (`lfr dlq list` says which and why; `lfr dlq redrive` sends it back).
- The frames worker or the alerts notifier failing as a whole (Lambda's Errors metric: an
  exception out of the handler, a timeout, a crash; powertools raises when every record of an
  invocation failed). A record that fails beside others that succeed is reported in
  batchItemFailures, which is not a Lambda error: it shows as a dead letter after its retries.
- The retention sweep failing as a whole, or failing to delete any item (its RetentionFailures
  metric, ops/retention.py: the run goes on past the item, which is left for the next run).
Every alarm notifies the operators' SNS topic (Settings.ops_topic) when it fires and clears.
Metrics carry queue and function names only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.names import dlq_name
from chalicelib.settings import SWEEP_INTERVAL_MIN, Settings

# The functions whose errors are alarmed, by their Chalice names (app.py).
WATCHED_FUNCTIONS = ("frames_worker", "alerts_notifier", "retention_sweep")
# ops/retention.py's metric: namespace, name, powertools' service dimension.
RETENTION = ("LiveFacialRecognition", "RetentionFailures", "lfr-retention")


@dataclass(frozen=True)
class Alarm:
    logical: str  # CloudFormation logical id
    name: str
    description: str
    namespace: str
    metric: str
    dimension: tuple[str, str]  # (name, value): one queue or one function
    statistic: str
    period_s: int
    threshold: float = 0.0
    comparison: str = "GreaterThanThreshold"
    evaluation_periods: int = 1
    # No data (a function not invoked, a queue never used) is not a failure.
    treat_missing: str = "notBreaching"
    function: str | None = None  # the Chalice function it watches, if any


def function_name(s: Settings, fn: str) -> str:
    """What `chalice deploy` names a function: <app>-<stage>-<handler name>."""
    return f"lfr-{s.stage}-{fn}"


def _logical(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def alarms(s: Settings) -> list[Alarm]:
    out = []
    for queue, what in ((s.frames_queue, "frame batches"), (s.alerts_queue, "alerts")):
        dlq = dlq_name(queue)
        kind = "Frames" if queue == s.frames_queue else "Alerts"
        # SQS publishes queue metrics every minute; the maximum over 5 minutes cannot miss one.
        out.append(Alarm(
            f"{kind}DeadLetterAlarm", f"{dlq}-not-empty",
            f"{what} dead-lettered after their retries: `lfr dlq list --queue "
            f"{kind.lower()}` shows which and why",
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", dlq), "Maximum", 300))
    for fn in WATCHED_FUNCTIONS:
        name = function_name(s, fn)
        out.append(Alarm(
            f"{_logical(fn)}ErrorsAlarm", f"{name}-errors",
            f"{fn} failed as a whole (exception, timeout or crash): its records are retried, "
            "then dead-lettered; see its logs",
            "AWS/Lambda", "Errors", ("FunctionName", name), "Sum", 60, function=fn))
    namespace, metric, service = RETENTION
    out.append(Alarm(
        "RetentionFailuresAlarm", f"lfr-{s.stage}-retention-failures",
        "the retention sweep could not delete items it is due to delete (crops, watchlists, "
        "sightings, track states); it retries them every run: see its log for which and why",
        namespace, metric, ("service", service), "Sum", SWEEP_INTERVAL_MIN * 60))
    return out


def put_alarm_args(a: Alarm, topic_arn: Any) -> dict[str, Any]:
    """PutMetricAlarm's parameters, which are also the CloudFormation resource's properties
    (`topic_arn` may then be a Ref)."""
    return {
        "AlarmName": a.name, "AlarmDescription": a.description,
        "Namespace": a.namespace, "MetricName": a.metric,
        "Dimensions": [{"Name": a.dimension[0], "Value": a.dimension[1]}],
        "Statistic": a.statistic, "Period": a.period_s,
        "EvaluationPeriods": a.evaluation_periods, "Threshold": a.threshold,
        "ComparisonOperator": a.comparison, "TreatMissingData": a.treat_missing,
        "ActionsEnabled": True, "AlarmActions": [topic_arn], "OKActions": [topic_arn],
    }


def create_alarms(cloudwatch: Any, s: Settings, topic_arn: str) -> list[str]:
    """Creates (or updates: PutMetricAlarm is an upsert) every alarm; returns their names."""
    names = []
    for a in alarms(s):
        cloudwatch.put_metric_alarm(**put_alarm_args(a, topic_arn))
        names.append(a.name)
    return names
