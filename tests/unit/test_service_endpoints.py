"""Endpoints per service (AWS_ENDPOINT_URL_<SERVICE>), resolved as boto3 resolves them."""

from __future__ import annotations

import boto3

from chalicelib import clients
from chalicelib.settings import Settings
from chalicelib.store.tables import tables

MIXED = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
         "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000",
         "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": "http://127.0.0.1:5000"}


def test_a_service_endpoint_overrides_the_global_one() -> None:
    s = Settings.from_env(MIXED)
    assert clients.endpoint_url("dynamodb", s) == "http://127.0.0.1:5000"
    assert clients.endpoint_url("cognito-idp", s) == "http://127.0.0.1:5000"
    for service in ("s3", "sqs", "sns", "sts", "cloudwatch"):
        assert clients.endpoint_url(service, s) == "http://127.0.0.1:4566"
    assert clients.endpoint_url("s3", Settings.from_env({})) is None
    assert tables(s).Alert.Meta.host == "http://127.0.0.1:5000"  # pynamodb follows it too
    hash(s)  # settings stay hashable (lru_caches key on them)


def test_service_ids_are_boto3s_own(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What boto3 would pick from the same environment by itself, for every service we use."""
    for k, v in MIXED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:7000")
    s = Settings.from_env()
    session = boto3.session.Session(region_name="eu-west-2", aws_access_key_id="x",
                                    aws_secret_access_key="x")
    for service in ("s3", "sqs", "sns", "sts", "dynamodb", "cloudwatch", "cognito-idp",
                    "events", "lambda", "iam", "apigateway"):
        native = session.client(service).meta.endpoint_url
        assert clients.endpoint_url(service, s) == native, service
