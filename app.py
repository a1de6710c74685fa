"""Chalice app: routes and event handlers only. Each parses, calls chalicelib, returns."""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chalice import Chalice, CognitoUserPoolAuthorizer, Rate, Response

from chalicelib.runtime import runtime, settings
from chalicelib.settings import SWEEP_INTERVAL_MIN

if TYPE_CHECKING:
    from chalicelib.api import Api
    from chalicelib.auth import Principal
# Every function imports this module; the API (request models, token checks) is imported by
# the routes on first use, not by the worker's or the notifier's cold start (issue 12). They
# share runtime(), which builds on first use: each function builds only what it uses of it.

app = Chalice(app_name="lfr")
_S = settings()
# On AWS, API Gateway verifies Cognito tokens; locally the app verifies its own (chalicelib/auth).
AUTH = (
    CognitoUserPoolAuthorizer("lfr-users", provider_arns=[_S.cognito_user_pool_arn])
    if _S.cognito_user_pool_arn
    else None
)
CONSOLE = Path(__file__).with_name("chalicelib") / "console" / "index.html"


@functools.cache
def _api() -> Api:
    from chalicelib.api import Api

    return Api(runtime())


@functools.cache
def _frames_handler():  # type: ignore[no-untyped-def]
    from chalicelib.ingest.worker import FramesHandler

    return FramesHandler(runtime())


@functools.cache
def _alerts_handler():  # type: ignore[no-untyped-def]
    from chalicelib.alerts.handler import AlertsHandler

    return AlertsHandler(runtime())


def _caller() -> tuple[Api, Principal]:
    """The API and the request's authenticated caller: every route asks first, so a stranger's
    request ends here, before its body is read."""
    api = _api()
    return api, api.principal(app.current_request)


def _body():  # type: ignore[no-untyped-def]
    """The request's JSON body: read only once the caller is known (after _caller())."""
    from chalicelib.api import json_body

    return json_body(app.current_request.raw_body)


def _authed(fn):  # type: ignore[no-untyped-def]
    @functools.wraps(fn)
    def route(*args, **kwargs):  # type: ignore[no-untyped-def]
        from chalicelib.api import errors_to_http

        return errors_to_http(fn)(*args, **kwargs)

    return route


@app.on_sqs_message(queue=_S.frames_queue, batch_size=5, name="frames_worker")
def frames_worker(event):  # type: ignore[no-untyped-def]
    return _frames_handler()(event.to_dict(), event.context)


@app.on_sqs_message(queue=_S.alerts_queue, batch_size=10, name="alerts_notifier")
def alerts_notifier(event):  # type: ignore[no-untyped-def]
    return _alerts_handler()(event.to_dict(), event.context)


@app.schedule(Rate(SWEEP_INTERVAL_MIN, unit=Rate.MINUTES), name="retention_sweep")
def retention_sweep(event):  # type: ignore[no-untyped-def]
    from chalicelib.ops.retention import report, sweep
    from chalicelib.store.tables import utcnow

    rt = runtime()
    done = sweep(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, utcnow(),
                 timedelta(hours=rt.settings.watchlist_grace_hours),
                 unbound_after=timedelta(hours=rt.settings.watchlist_unbound_hours),
                 frames=(rt.settings.frames_bucket,
                         timedelta(hours=rt.settings.dead_letter_frames_hours)))
    report(done)
    return done


@app.schedule(Rate(1, unit=Rate.MINUTES), name="camera_watch")
def camera_watch(event):  # type: ignore[no-untyped-def]
    """A camera dark for camera_dark_push_s during a running deployment: a push to its
    officers' phones, once per dark spell (ops/camera_health.py)."""
    from chalicelib.ops.camera_health import push_dark_cameras
    from chalicelib.store.tables import utcnow

    rt = runtime()
    s = rt.settings
    return {"pushes": push_dark_cameras(rt.tables, rt.client("sns"), utcnow(),
                                        s.gateway_heartbeat_s, s.camera_dark_push_s)}


@app.route("/health")
def health():  # type: ignore[no-untyped-def]
    return {"status": "ok", "stage": _S.stage}


@functools.cache
def _console_page() -> str:
    return CONSOLE.read_text()


@app.route("/console")
def console():  # type: ignore[no-untyped-def]
    # The page shell holds no data; every call it makes carries the officer's token.
    return Response(_console_page(), headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/watchlists", methods=["POST"], authorizer=AUTH)
@_authed
def create_watchlist():  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.create_watchlist(p, _body())


@app.route("/watchlists/{watchlist_id}", authorizer=AUTH)
@_authed
def get_watchlist(watchlist_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.watchlist(p, watchlist_id)


@app.route("/watchlists/{watchlist_id}/subjects", methods=["POST"], authorizer=AUTH)
@_authed
def add_subject(watchlist_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.add_subject(p, watchlist_id, _body())


@app.route("/watchlists/{watchlist_id}/subjects/batch", methods=["POST"], authorizer=AUTH)
@_authed
def add_subjects(watchlist_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.add_subjects(p, watchlist_id, _remaining_s(), _body())


def _remaining_s():  # type: ignore[no-untyped-def]
    """Seconds this invocation has left (Lambda's own clock; locally, from the timeout)."""
    from chalicelib.api import API_TIMEOUT_S

    ctx, start = app.lambda_context, time.monotonic()
    if ctx is not None and hasattr(ctx, "get_remaining_time_in_millis"):
        return lambda: ctx.get_remaining_time_in_millis() / 1000.0
    return lambda: API_TIMEOUT_S - (time.monotonic() - start)


@app.route("/watchlists/{watchlist_id}/subjects/{subject_id}", methods=["DELETE"],
           authorizer=AUTH)
@_authed
def remove_subject(watchlist_id, subject_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.remove_subject(p, watchlist_id, subject_id)


@app.route("/watchlists/{watchlist_id}/authorise", methods=["POST"], authorizer=AUTH)
@_authed
def authorise_watchlist(watchlist_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.authorise(p, watchlist_id)


@app.route("/watchlists/{watchlist_id}/audit", authorizer=AUTH)
@_authed
def watchlist_audit(watchlist_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.audit_trail(p, f"watchlist#{watchlist_id}")


@app.route("/deployments", methods=["POST"], authorizer=AUTH)
@_authed
def create_deployment():  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.create_deployment(p, _body())


@app.route("/deployments/{deployment_id}", authorizer=AUTH)
@_authed
def get_deployment(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.deployment(p, deployment_id)


@app.route("/deployments/{deployment_id}/end", methods=["POST"], authorizer=AUTH)
@_authed
def end_deployment(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.end_deployment(p, deployment_id)


@app.route("/deployments/{deployment_id}/cameras/{camera_id}/grant", methods=["POST"],
           authorizer=AUTH)
@_authed
def camera_grant(deployment_id, camera_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.camera_grant(p, deployment_id, camera_id)


@app.route("/deployments/{deployment_id}/cameras/{camera_id}/heartbeat", methods=["POST"],
           authorizer=AUTH)
@_authed
def camera_heartbeat(deployment_id, camera_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.camera_heartbeat(p, deployment_id, camera_id, _body())


@app.route("/deployments/{deployment_id}/cameras", authorizer=AUTH)
@_authed
def deployment_cameras(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.cameras(p, deployment_id)


@app.route("/deployments/{deployment_id}/devices", methods=["POST"], authorizer=AUTH)
@_authed
def register_device_route(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.register_device(p, deployment_id, _body())


@app.route("/deployments/{deployment_id}/alerts", authorizer=AUTH)
@_authed
def deployment_alerts(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.alerts(p, deployment_id)


@app.route("/deployments/{deployment_id}/audit", authorizer=AUTH)
@_authed
def deployment_audit(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.audit_trail(p, deployment_id)


@app.route("/deployments/{deployment_id}/record", authorizer=AUTH)
@_authed
def deployment_record(deployment_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.record(p, deployment_id)


@app.route("/deployments/{deployment_id}/record.html", authorizer=AUTH)
@_authed
def deployment_record_html(deployment_id):  # type: ignore[no-untyped-def]
    from chalicelib.ops.records import record_html

    api, p = _caller()
    page = record_html(api.record(p, deployment_id))
    return Response(page, headers={"Content-Type": "text/html; charset=utf-8"})


@app.route("/alerts/{alert_id}", authorizer=AUTH)
@_authed
def get_alert(alert_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.alert(p, alert_id, app.current_request.query_params)


@app.route("/alerts/{alert_id}/adjudication", methods=["POST"], authorizer=AUTH)
@_authed
def adjudicate(alert_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.adjudicate(p, alert_id, _body())


@app.route("/alerts/{alert_id}/outcome", methods=["POST"], authorizer=AUTH)
@_authed
def record_outcome(alert_id):  # type: ignore[no-untyped-def]
    api, p = _caller()
    return api.outcome(p, alert_id, _body())
