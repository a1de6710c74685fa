"""The key that signs alert links (alerts/links.py).

LFR_LINK_SECRET where it is set (the local stacks make one per run); otherwise the stage's
Secrets Manager secret (Settings.link_secret_name), which the infra stack generates at deploy
(infra/cfn.py). Read once per container, when the notifier or the API is built: a stage with
neither does not start, rather than push links anyone could forge or that never expire.
"""

from __future__ import annotations

from typing import Any

from chalicelib.settings import ConfigurationError, Settings


def read_link_secret(s: Settings, secretsmanager: Any) -> str:
    if s.link_secret:
        return s.link_secret
    try:
        value = secretsmanager.get_secret_value(SecretId=s.link_secret_name).get("SecretString")
    except secretsmanager.exceptions.ResourceNotFoundException:
        value = None
    if not value:
        raise ConfigurationError(
            f"no alert link secret: neither LFR_LINK_SECRET nor the secret "
            f"{s.link_secret_name} (made by the infra stack at deploy) is there")
    return str(value)
