"""Alert links are signed on every stage (issue 22 item 6): the key is the stage's Secrets
Manager secret, made at deploy (infra/cfn.py), read once per container; a stage without one
refuses to start its notifier and API instead of pushing unsigned links. On moto server."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from chalicelib.settings import ConfigurationError
from infra import cfn, spec


def _deployed(rt: Any) -> Any:
    """The local runtime as a deployed stage sees it: no LFR_LINK_SECRET in its environment."""
    from chalicelib.runtime import Runtime

    return Runtime(dataclasses.replace(rt.settings, link_secret=""))


def test_without_its_secret_a_deployed_stage_does_not_start(rt) -> None:
    from chalicelib.alerts.handler import AlertsHandler
    from chalicelib.api import Api

    bare = _deployed(rt)
    with pytest.raises(ConfigurationError, match="link"):
        AlertsHandler(bare)
    with pytest.raises(ConfigurationError, match="link"):
        Api(bare)


def test_a_deployed_stage_signs_its_links_with_the_secret_made_at_deploy(rt) -> None:
    from chalicelib.alerts.handler import AlertsHandler
    from chalicelib.alerts.links import link_valid

    bare = _deployed(rt)
    sm = rt.client("secretsmanager")
    sm.create_secret(Name=bare.settings.link_secret_name, SecretString="k" * 64)
    try:
        handler = AlertsHandler(bare)
        link = handler.link("al-1")
        q = {k: v[0] for k, v in parse_qs(urlparse(link).query).items()}
        assert q["sig"] and link_valid("k" * 64, "al-1", q["exp"], q["sig"])
    finally:
        sm.delete_secret(SecretId=bare.settings.link_secret_name, ForceDeleteWithoutRecovery=True)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_infra_stack_makes_the_secret_and_only_the_api_and_notifier_read_it(
        stage: str) -> None:
    from infra import policies

    s = spec.stage_settings(stage)
    res = cfn.infra_template(stage)["Resources"]
    [secret] = [r["Properties"] for r in res.values()
                if r["Type"] == "AWS::SecretsManager::Secret"]
    assert secret["Name"] == s.link_secret_name and secret["GenerateSecretString"]
    readers = set()
    for fn, make in policies.PERMISSIONS.items():
        for st in make(policies.Arns(spec.build(s))):
            if "secretsmanager:GetSecretValue" in st["Action"]:
                assert all(s.link_secret_name in r for r in st["Resource"]), st
                readers.add(fn)
    assert readers == {"api_handler", "alerts_notifier"}
