"""How long each queue's consumer may run, and what follows from it: one place.

- Each function's Lambda timeout (infra/policies.py writes them into .chalice/config.json, and
  its --check fails when the file differs).
- Each queue's visibility timeout: six times its consumer's timeout, AWS's rule for an SQS event
  source, so that a message held by pollers while the function is throttled (reserved
  concurrency) comes back no sooner than a try could have ended.
- When SQS's redrive moves a message: one delivery after the handler's last try
  (Settings.max_receive_count). A handler that fails on its last try dead-letters the message
  itself, with the reason; one that died on it (a timeout, a crash) did not, so the message
  comes back once more, and the handler dead-letters it then, saying so (deadletter.py).
- A record that failed, not on its last try, comes back after RETRY_AFTER_S, not after the
  (long) visibility timeout: the handler shortens it.
- How late a delivery can come after an earlier one whose work landed (longest_redelivery_s):
  what the worker's memory of applied batches must outlast (ingest/continuity.py).
"""

from __future__ import annotations

DEFAULT_TIMEOUT_S = 20  # every function not named below (Chalice's top-level lambda_timeout)
FUNCTION_TIMEOUT_S = {"frames_worker": 90}
CONSUMER = {"frames": "frames_worker", "alerts": "alerts_notifier"}  # queue (short) -> function
VISIBILITY_PER_TIMEOUT = 6
RETRY_AFTER_S = 10


def function_timeout_s(function: str) -> int:
    return FUNCTION_TIMEOUT_S.get(function, DEFAULT_TIMEOUT_S)


def visibility_timeout_s(queue: str) -> int:
    """`queue`: "frames" or "alerts"."""
    return VISIBILITY_PER_TIMEOUT * function_timeout_s(CONSUMER[queue])


def redrive_receive_count(handler_tries: int) -> int:
    """SQS's maxReceiveCount: one delivery more than the handler tries."""
    return handler_tries + 1


def longest_redelivery_s(queue: str, handler_tries: int) -> int:
    """The longest a message can take to come back after any of its deliveries: every later
    one a full visibility timeout after the one before (a try that died, or pollers throttled),
    up to the last that SQS makes before its redrive."""
    return redrive_receive_count(handler_tries) * visibility_timeout_s(queue)
