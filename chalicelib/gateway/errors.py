"""How an upload (or a grant request) failed, which decides what the gateway does next."""

from __future__ import annotations


class UploadError(RuntimeError):
    """An upload did not happen."""


class Retryable(UploadError):
    """Connection refused or reset, a timeout, 5xx, throttling: try again after a backoff."""


class GrantRefused(UploadError):
    """S3 refused the grant (expired, or its policy no longer holds): renew it, then retry."""


class Rejected(UploadError):
    """Refused for good (a 4xx no new grant cures): the batch is dropped and counted."""


class NotRunning(UploadError):
    """The API issues no grant: the deployment is not running now (or not for this camera)."""
