"""Chalice app: routes and event handlers only. Each parses, calls chalicelib, returns."""

from __future__ import annotations

import functools

from chalice import BadRequestError, Chalice, NotFoundError
from pydantic import ValidationError

from chalicelib import names
from chalicelib.api import DeviceRegistration, validation_message
from chalicelib.ops.deployments import NotFound, register_device
from chalicelib.runtime import runtime, settings

app = Chalice(app_name="lfr")
_S = settings()


@functools.cache
def _frames_handler():  # type: ignore[no-untyped-def]
    from chalicelib.ingest.worker import FramesHandler

    return FramesHandler(runtime())


@functools.cache
def _alerts_handler():  # type: ignore[no-untyped-def]
    from chalicelib.alerts.handler import AlertsHandler

    return AlertsHandler(runtime())


@app.on_sqs_message(queue=_S.frames_queue, batch_size=5, name="frames_worker")
def frames_worker(event):  # type: ignore[no-untyped-def]
    return _frames_handler()(event.to_dict(), event.context)


@app.on_sqs_message(queue=_S.alerts_queue, batch_size=10, name="alerts_notifier")
def alerts_notifier(event):  # type: ignore[no-untyped-def]
    return _alerts_handler()(event.to_dict(), event.context)


@app.route("/health")
def health():  # type: ignore[no-untyped-def]
    return {"status": "ok", "stage": _S.stage}


@app.route("/deployments/{deployment_id}/devices", methods=["POST"])
def register_device_route(deployment_id):  # type: ignore[no-untyped-def]
    try:
        body = DeviceRegistration.model_validate(app.current_request.json_body or {})
    except ValidationError as exc:
        raise BadRequestError(validation_message(exc)) from None
    rt = runtime()
    try:
        return register_device(
            rt.tables,
            rt.client("sns"),
            names.platform_app_arn(rt.settings, body.platform),
            deployment_id,
            body.officer_id,
            body.platform,
            body.push_token,
        )
    except NotFound as exc:
        raise NotFoundError(str(exc)) from None
