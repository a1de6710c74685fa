"""Short-lived links to an alert, carried by the push: expire after minutes, cannot be forged.

The link only says which alert to open; reading it still needs the officer's own sign-in."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


def _sig(secret: str, alert_id: str, exp: int) -> str:
    msg = f"{alert_id}|{exp}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def alert_link(base_url: str, secret: str, alert_id: str, ttl_s: int,
               now: float | None = None) -> str:
    if not secret:  # never an unsigned link (chalicelib/link_secret.py)
        raise ValueError("no secret to sign the alert link with")
    exp = int((time.time() if now is None else now) + ttl_s)
    query = {"alert": alert_id, "exp": exp, "sig": _sig(secret, alert_id, exp)}
    return f"{base_url}?{urlencode(query)}"


def link_valid(secret: str, alert_id: str, exp: str, sig: str, now: float | None = None) -> bool:
    try:
        exp_i = int(exp)
    except ValueError:
        return False
    if exp_i < (time.time() if now is None else now):
        return False
    # As bytes: compare_digest refuses a str that is not ASCII (a hostile link's "sig=é").
    return bool(secret) and hmac.compare_digest(_sig(secret, alert_id, exp_i).encode(),
                                                sig.encode("utf-8", "replace"))
