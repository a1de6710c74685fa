"""Local stand-in for Lambda's SQS event source mappings (Lambda code cannot run without Docker).

It long-polls each queue, hands the handler a Lambda-shaped SQS event, deletes the records the
handler did not report in batchItemFailures, and leaves the failed ones to SQS: they come back
after a short backoff and, past maxReceiveCount, SQS moves them to the dead-letter queue.
Started in the background, each queue has its own thread, as each function has its own
pollers on AWS: an alert is pushed while the worker is still busy with later frames.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import clients
from chalicelib.settings import Settings

log = logging.getLogger("lfr.pump")
POLL_S = 0.05  # between two looks at a queue that has work in flight
# Each is 0 when a queue holds nothing to deliver, nothing being delivered, nothing delayed.
BACKLOG = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
           "ApproximateNumberOfMessagesDelayed")
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """Enough of Lambda's context object for powertools (idempotency, logger)."""

    function_name: str
    timeout_ms: int = 120_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = ""
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self._start) * 1000))


def load_app(path: Path | None = None) -> Any:
    """Import the Chalice app from app.py at the repository root."""
    path = path or Path(__file__).resolve().parents[2] / "app.py"
    spec = importlib.util.spec_from_file_location("lfr_app", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


@dataclass
class Mapping:
    """One event source mapping: a queue and the handler it feeds."""

    queue_name: str
    handler: Handler
    function_name: str
    batch_size: int = 10


class EventPump:
    def __init__(self, settings: Settings, mappings: list[Mapping], settle_s: float = 0.0) -> None:
        """`settle_s`: how long drain() wants the queues to stay empty, for a backend that
        delivers S3 notifications after the upload has returned (LocalStack); moto delivers
        them before it answers the upload."""
        self.settings = settings
        self.settle_s = settle_s
        self.sqs = clients.client("sqs", settings)
        self.mappings = mappings
        self._urls = {m.queue_name: self.sqs.get_queue_url(QueueName=m.queue_name)["QueueUrl"]
                      for m in mappings}
        self._arns = {
            name: self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            for name, url in self._urls.items()
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = threading.Lock()
        self.invocations = 0
        self.errors = 0

    def poll_once(self, wait_s: int = 0) -> int:
        """One receive per mapping; returns how many messages were handed to handlers."""
        return sum(self._poll(m, wait_s) for m in self.mappings)

    def _poll(self, m: Mapping, wait_s: int) -> int:
        url = self._urls[m.queue_name]
        messages = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=m.batch_size,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            self._invoke(m, url, messages)
        return len(messages)

    def _invoke(self, m: Mapping, url: str, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self._arns[m.queue_name], self.settings.region)
        with self._count:
            self.invocations += 1
        try:
            response = m.handler(event, LambdaContext(m.function_name)) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("%s failed as a whole; the batch is retried", m.function_name)
            failed = {msg["MessageId"] for msg in messages}
        with self._count:
            self.errors += len(failed)
        for msg in messages:
            if msg["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"],
                    VisibilityTimeout=self.settings.pump_retry_s,
                )
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])

    def drain(self, timeout: float = 60.0) -> None:
        """Pump in this thread until the queues are idle (tests, benchmarks)."""
        self._until_idle(timeout, lambda: self.poll_once(wait_s=0))

    def wait_idle(self, timeout: float = 180.0) -> None:
        """Until the queues are idle, while the pump's own threads deliver (start())."""
        self._until_idle(timeout, lambda: 0)

    def _until_idle(self, timeout: float, step: Callable[[], int]) -> None:
        """Idle: no queue holds a message, visible, in flight (a failed record waiting for its
        retry) or delayed, and none has for `settle_s`."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"queues did not drain in {timeout} s")
            if step():
                idle_since = None
                continue
            if self.backlog() == 0:
                # Two empty readings a poll apart, at least: moto counts a message whose
                # visibility ends between its two clock reads as neither visible nor in
                # flight (seen once: a held message left behind).
                if idle_since is not None and now - idle_since >= self.settle_s:
                    return
                idle_since = now if idle_since is None else idle_since
            else:
                idle_since = None
            time.sleep(POLL_S)

    def backlog(self) -> int:
        """Messages in the mapped queues, visible, in flight or delayed."""
        return sum(queue_backlog(self.sqs, url) for url in self._urls.values())

    def start(self) -> None:
        def run(m: Mapping) -> None:
            while not self._stop.is_set():
                try:
                    self._poll(m, wait_s=1)  # returns as soon as a message arrives
                except Exception:
                    log.exception("pump poll of %s failed", m.queue_name)
                    time.sleep(1)

        self._stop.clear()
        self._threads = [threading.Thread(target=run, args=(m,), name=f"lfr-pump-{m.function_name}",
                                          daemon=True) for m in self.mappings]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []


def queue_backlog(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(BACKLOG))["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in BACKLOG)


def app_mappings(app: Any, settings: Settings) -> list[Mapping]:
    """The app's SQS handlers, as chalice deploy would map them."""
    return [
        Mapping(settings.frames_queue, app_handler(app, "frames_worker"), "frames_worker", 5),
        Mapping(settings.alerts_queue, app_handler(app, "alerts_notifier"), "alerts_notifier", 10),
    ]


def app_handler(app: Any, name: str) -> Handler:
    handler = app.handler_map.get(name)
    if handler is None:
        raise RuntimeError(f"app.py has no event handler named {name}")
    return handler
