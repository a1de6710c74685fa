"""Errors the API maps to HTTP statuses."""


class NotFound(LookupError):
    """404."""
