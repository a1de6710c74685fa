"""Deployments and the officer devices registered on them."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.store import layout
from chalicelib.store.tables import Tables

PLATFORMS = ("gcm", "apns")


class NotFound(LookupError):
    pass


def create_deployment(
    tables: Tables,
    name: str,
    watchlist_id: str,
    cameras: list[str],
    threshold: float,
    place: str | None = None,
    target_fpir: float | None = None,
    deployment_id: str | None = None,
) -> str:
    deployment_id = deployment_id or f"dep-{uuid.uuid4().hex[:12]}"
    bad = [c for c in [deployment_id, *cameras] if not layout.valid_id(c)]
    if bad:
        raise ValueError(f"invalid ids: {bad}")
    tables.Watchlist.get(watchlist_id)  # must exist
    tables.Deployment(
        deployment_id=deployment_id,
        name=name,
        watchlist_id=watchlist_id,
        cameras=cameras,
        place=place,
        threshold=threshold,
        target_fpir=target_fpir,
    ).save(condition=tables.Deployment.deployment_id.does_not_exist())
    tables.Watchlist.get(watchlist_id).update(
        actions=[tables.Watchlist.deployment_id.set(deployment_id)]
    )
    return deployment_id


def get_deployment(tables: Tables, deployment_id: str) -> Any:
    try:
        return tables.Deployment.get(deployment_id)
    except tables.Deployment.DoesNotExist:
        raise NotFound(f"deployment {deployment_id} not found") from None


def register_device(
    tables: Tables,
    sns: Any,
    platform_app_arn: str,
    deployment_id: str,
    officer_id: str,
    platform: str,
    push_token: str,
) -> dict[str, str]:
    """Create the SNS platform endpoint for a phone's push token and attach it to a deployment."""
    get_deployment(tables, deployment_id)
    endpoint = sns.create_platform_endpoint(
        PlatformApplicationArn=platform_app_arn,
        Token=push_token,
        CustomUserData=officer_id,
    )["EndpointArn"]
    device_id = "dev-" + endpoint.rsplit("/", 1)[-1][:24]
    tables.Device(
        deployment_id=deployment_id,
        device_id=device_id,
        officer_id=officer_id,
        platform=platform,
        endpoint_arn=endpoint,
    ).save()
    return {"device_id": device_id, "endpoint_arn": endpoint}
