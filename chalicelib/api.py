"""The REST API behind app.py's routes: bodies validated with pydantic (a bad body gets a 400
that says what is wrong), roles checked, errors mapped to HTTP statuses in one place."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

from aws_lambda_powertools import Logger
from chalice import (
    BadRequestError,
    ChaliceViewError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chalicelib import names
from chalicelib.alerts import adjudication
from chalicelib.alerts.links import link_valid
from chalicelib.auth import Forbidden, Principal, Unauthenticated, authenticate
from chalicelib.camera_report import SHED_REASONS, SOURCE_STATES
from chalicelib.matching.calibration import DEFAULT_TARGET_FPIR
from chalicelib.matching.subject_face import FaceHint
from chalicelib.matching.template import EnrollmentError
from chalicelib.ops import audit, camera_health, deployments, records, watchlist_outlook, watchlists
from chalicelib.ops.cameras import camera_upload_grant
from chalicelib.ops.errors import NotFound
from chalicelib.runtime import Runtime
from chalicelib.settings import ConfigurationError
from chalicelib.store.layout import ID_PATTERN
from chalicelib.store.tables import utcnow

M = TypeVar("M", bound=BaseModel)
logger = Logger(service="lfr-api")


class GoneError(ChaliceViewError):
    STATUS_CODE = 410


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceRegistration(_Body):
    officer_id: str = Field(min_length=1, max_length=128)
    platform: Literal["gcm", "apns"]
    push_token: str = Field(min_length=8, max_length=4096)


class NewWatchlist(_Body):
    name: str = Field(min_length=1, max_length=200)


# A face chosen by the operator in one image: its index in a refusal's listing, or a box.
FaceChoice = int | tuple[float, float, float, float] | None


class NewSubject(_Body):
    display_name: str = Field(min_length=1, max_length=200)
    images_b64: list[str] = Field(min_length=1, max_length=10)
    source: str = Field(min_length=1, max_length=500, description="where the image came from")
    reason: str = Field(min_length=1, max_length=500, description="why this person is listed")
    faces: list[FaceChoice] | None = Field(
        default=None, description="per image: null, a face index or a box [x1, y1, x2, y2], "
                                  "for a photo refused as ambiguous")

    @model_validator(mode="after")
    def _one_choice_per_image(self) -> NewSubject:
        if self.faces is not None and len(self.faces) != len(self.images_b64):
            raise ValueError(f"faces: {len(self.faces)} choices for "
                             f"{len(self.images_b64)} images")
        return self


# Within the API function's 20 s and 512 MB (at 512 MB Lambda gives ~0.3 of a vCPU): a request
# carries at most this many subjects and images; the rest is for the next request.
MAX_BATCH_SUBJECTS = 10
MAX_BATCH_IMAGES = 20
API_TIMEOUT_S = 20.0  # .chalice/config.json lambda_timeout
BATCH_RESERVE_S = 3.0  # kept back for the response and the last writes
ASSUMED_S_PER_IMAGE = 1.0  # before the first subject is timed


class NewSubjects(_Body):
    subjects: list[NewSubject] = Field(min_length=1, max_length=MAX_BATCH_SUBJECTS)

    @model_validator(mode="after")
    def _images_within_limit(self) -> NewSubjects:
        n = sum(len(s.images_b64) for s in self.subjects)
        if n > MAX_BATCH_IMAGES:
            raise ValueError(f"{n} images; at most {MAX_BATCH_IMAGES} per request "
                             "(send the rest in another)")
        return self


class NewDeployment(_Body):
    name: str = Field(min_length=1, max_length=200)
    place: str = Field(min_length=1, max_length=300)
    watchlist_id: str = Field(pattern=ID_PATTERN.pattern)
    cameras: list[str] = Field(min_length=1, max_length=50)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    # 1 in a billion passers-by at the least: 300x below the Met's measured 3.2 per million, and
    # far inside what the impostor model and a DynamoDB number hold.
    target_fpir: float = Field(default=DEFAULT_TARGET_FPIR, ge=1e-9, le=0.01,
                               description="false alerts per passer-by")
    authorising_officer: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)
    deployment_id: str | None = Field(default=None, pattern=ID_PATTERN.pattern)


class Adjudication(_Body):
    decision: Literal["true_alert", "false_alert"]
    note: str | None = Field(default=None, max_length=1000)


class Outcome(_Body):
    outcome: Literal[adjudication.OUTCOMES]  # type: ignore[valid-type]


_Count = Field(ge=0, le=10**12)


class Heartbeat(_Body):
    """A gateway's report (gateway/heartbeat.py): counts and times only. Unknown fields are
    refused, so nothing else (and nothing biometric) can ride along."""

    run_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    started_at: AwareDatetime
    interval_s: float = Field(gt=0, le=3600)
    stopped: bool = False
    frames_read: int = _Count
    frames_sent: int = _Count
    frames_shed: dict[Literal[SHED_REASONS], int] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    batches_sent: int = _Count
    retries: int = _Count
    grant_renewals: int = _Count
    reconnects: int = _Count
    source_state: Literal[SOURCE_STATES]  # type: ignore[valid-type]
    last_capture_at: AwareDatetime | None = None
    watching_s: float = Field(ge=0, le=10**9)
    uplink_ms: float | None = Field(default=None, ge=0, le=10**7)
    queued_frames: int = _Count

    @field_validator("frames_shed")
    @classmethod
    def _counts(cls, v: dict[str, int]) -> dict[str, int]:
        if any(not 0 <= n <= 10**12 for n in v.values()):
            raise ValueError("shed counts must be between 0 and 10^12")
        return v


def validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


def json_body(raw: bytes | None) -> Any:
    """A request's JSON body; a 400 that says why when it is not JSON (a body nested deeper
    than the parser follows is refused too, rather than a 500)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise BadRequestError(f"request body is not valid JSON: {reason}") from None


def parse(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as exc:
        raise BadRequestError(validation_message(exc)) from None


def errors_to_http(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors -> HTTP errors, in one place."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Unauthenticated as exc:
            raise UnauthorizedError(str(exc)) from None
        except Forbidden as exc:
            raise ForbiddenError(str(exc)) from None
        except NotFound as exc:
            raise NotFoundError(str(exc)) from None
        except watchlists.LifecycleError as exc:
            raise ConflictError(str(exc)) from None
        except ConfigurationError as exc:
            # The caller did nothing wrong: say so, and log what is wrong for the operator.
            logger.error("configuration error", extra={"error": str(exc)})
            raise ChaliceViewError(
                "server configuration error: the service cannot process this request "
                "(see its log)") from None
        except (EnrollmentError, ValueError) as exc:
            raise BadRequestError(str(exc)) from None

    return wrapper


def _references(template: Any) -> dict[str, Any]:
    """What the expected TPIR of a subject is read from (matching/expected_tpir.py)."""
    return {"n_images": len(template.image_quality),
            "reference_agreement": template.agreement}


class Api:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._link_secret = rt.link_secret  # at start-up: a stage without one does not start

    @property
    def tables(self) -> Any:
        return self.rt.tables

    def principal(self, request: Any) -> Principal:
        return authenticate(request.headers, request.context, self.rt.settings.local_auth_secret)

    # -- watchlists (operators) ------------------------------------------------------------
    def create_watchlist(self, p: Principal, body: Any) -> dict[str, Any]:
        p.require("operator")
        b = parse(NewWatchlist, body)
        wl = watchlists.create_watchlist(self.tables, b.name, self.rt.model_id,
                                         created_by=p.sub)
        return self.watchlist(p, wl)

    def watchlist(self, p: Principal, watchlist_id: str) -> dict[str, Any]:
        p.require("operator", "auditor")
        wl = watchlists.get_watchlist(self.tables, watchlist_id)
        subjects = [
            {"subject_id": s.subject_id, "display_name": s.display_name,
             "n_images": int(s.n_images), "image_quality": [float(q) for q in s.image_quality],
             "reference_agreement": (None if s.reference_agreement is None
                                     else float(s.reference_agreement)),
             "source": s.source, "reason": s.reason}
            for s in self.tables.Subject.query(watchlist_id)
        ]
        return {"watchlist_id": wl.watchlist_id, "name": wl.name, "status": wl.status,
                "created_by": wl.created_by, "authorised_by": wl.authorised_by,
                "deployment_id": wl.deployment_id, "model_id": wl.model_id,
                "outlook": watchlist_outlook.outlook(self.tables, wl, subjects),
                "subjects": subjects}

    def add_subject(self, p: Principal, watchlist_id: str, body: Any) -> dict[str, Any]:
        p.require("operator")
        b = parse(NewSubject, body)
        done = self._enroll(p, watchlist_id, b, _images(b), None)
        out = {"subject_id": done.subject_id, "image_quality": done.image_quality,
               **_references(done.template),
               "faces": [list(r.box) if r.box else None for r in done.template.results]}
        out["outlook"] = watchlist_outlook.enrolled_outlook(self.tables, watchlist_id, [out])
        return out

    def add_subjects(self, p: Principal, watchlist_id: str,
                     remaining_s: Callable[[], float], body: Any) -> dict[str, Any]:
        """Many subjects in one request, each enrolled or refused on its own (one bad image
        loses nothing else); those the time left would not cover come back not_processed, to
        be sent again. Embeddings are made here, never taken from the caller: a vector sent in
        could be made to match anyone, and it could not be checked against the reference image
        kept as evidence."""
        p.require("operator")
        b = parse(NewSubjects, body)
        watchlists.check_enrollable(self.tables, watchlist_id, self.rt.model_id)
        results: list[dict[str, Any]] = []
        per_image, started = ASSUMED_S_PER_IMAGE, time.monotonic()
        images_done = 0
        for i, sub in enumerate(b.subjects):
            if remaining_s() - BATCH_RESERVE_S < per_image * len(sub.images_b64):
                results += [{"index": k, "status": "not_processed",
                             "reason": "not enough time left in this request: send it again"}
                            for k in range(i, len(b.subjects))]
                break
            results.append({"index": i, **self._enroll_one(p, watchlist_id, sub)})
            images_done += len(sub.images_b64)
            per_image = max(0.05, (time.monotonic() - started) / images_done)
        counts = {k: sum(r["status"] == k for r in results)
                  for k in ("enrolled", "already_enrolled", "refused", "not_processed")}
        enrolled = [r for r in results if r["status"] == "enrolled"]
        outlook = (watchlist_outlook.enrolled_outlook(self.tables, watchlist_id, enrolled)
                   if enrolled else None)
        return {"watchlist_id": watchlist_id, **counts, "outlook": outlook, "results": results}

    def _enroll_one(self, p: Principal, watchlist_id: str, sub: NewSubject) -> dict[str, Any]:
        """Its id comes from its name and images: the same subject sent again (a client
        retrying after a timeout) is recognised, and one id never stands for other images."""
        try:
            images = _images(sub)
            sid = batch_subject_id(sub.display_name, images)
            done = self._enroll(p, watchlist_id, sub, images, sid)
        except watchlists.AlreadyEnrolled:
            return {"status": "already_enrolled", "subject_id": sid}
        except (BadRequestError, EnrollmentError) as exc:
            refused = getattr(exc, "results", [])
            return {"status": "refused", "reason": str(exc),
                    "images": [{"code": r.code, "reason": r.reason, "faces": r.faces}
                               for r in refused]}
        return {"status": "enrolled", "subject_id": done.subject_id,
                "image_quality": done.image_quality, **_references(done.template),
                "faces": [list(r.box) if r.box else None for r in done.template.results]}

    def _enroll(self, p: Principal, watchlist_id: str, b: NewSubject,
                images: list[tuple[str, bytes]], subject_id: str | None) -> Any:
        hints = None
        if b.faces is not None:
            try:
                hints = [_hint(f) for f in b.faces]
            except ValueError as exc:
                raise BadRequestError(f"faces: {exc}") from None
        return watchlists.enroll_subject(
            self.tables, self.rt.client("s3"), self.rt.settings.evidence_bucket,
            self.rt.pipeline, watchlist_id, b.display_name, images, source=b.source,
            reason=b.reason, actor=p.sub, hints=hints, subject_id=subject_id,
            max_pixels=self.rt.settings.max_reference_pixels, only_new=subject_id is not None)

    def remove_subject(self, p: Principal, watchlist_id: str, subject_id: str) -> dict[str, Any]:
        p.require("operator")
        watchlists.remove_subject(self.tables, self.rt.client("s3"),
                                  self.rt.settings.evidence_bucket, watchlist_id, subject_id,
                                  p.sub)
        return {"removed": subject_id}

    def authorise(self, p: Principal, watchlist_id: str) -> dict[str, Any]:
        p.require("operator")
        watchlists.authorise_watchlist(self.tables, self.rt.client("s3"),
                                       self.rt.settings.evidence_bucket, watchlist_id, p.sub)
        return self.watchlist(p, watchlist_id)

    # -- deployments -----------------------------------------------------------------------
    def create_deployment(self, p: Principal, body: Any) -> dict[str, Any]:
        p.require("operator")
        b = parse(NewDeployment, body)
        made = deployments.create_deployment_checked(
            self.tables, b.name, b.watchlist_id, b.cameras, place=b.place,
            target_fpir=b.target_fpir, deployment_id=b.deployment_id, starts_at=b.starts_at,
            ends_at=b.ends_at, authorising_officer=b.authorising_officer, reason=b.reason,
            created_by=p.sub, differentials_path=self.rt.settings.differentials_path)
        out = {**self.deployment(p, made.deployment_id), "warnings": made.warnings}
        # From what creation counted: no second read of the watchlist's subjects.
        out["operating_point"] = deployments.operating_points(
            made.model_id, made.template_sizes, made.threshold, b.target_fpir)
        return out

    def deployment(self, p: Principal, deployment_id: str) -> dict[str, Any]:
        p.require("operator", "auditor", "officer")
        p.require_deployment(deployment_id)
        rec = records.transparency_record(self.tables, deployment_id)
        rec["watchlist_id"] = deployments.get_deployment(self.tables, deployment_id).watchlist_id
        return rec

    def end_deployment(self, p: Principal, deployment_id: str) -> dict[str, Any]:
        p.require("operator")
        deployments.end_deployment(self.tables, deployment_id, p.sub)
        return self.deployment(p, deployment_id)

    def camera_grant(self, p: Principal, deployment_id: str, camera_id: str) -> dict[str, Any]:
        if "operator" not in p.roles:
            p.require("camera")
            if p.camera != f"{deployment_id}/{camera_id}":
                raise Forbidden("a camera may only upload to its own prefix")
        dep = deployments.get_deployment(self.tables, deployment_id)
        if camera_id not in (dep.cameras or []):
            raise NotFound(f"camera {camera_id} is not on deployment {deployment_id}")
        now = utcnow()
        if dep.status != "active" or not deployments.in_window(dep, now):
            raise Forbidden("the deployment is not running now: no uploads")
        s = self.rt.settings
        end = dep.ends_at or now + timedelta(seconds=s.grant_ttl_s)
        expires = max(1, min(s.grant_ttl_s, int((end - now).total_seconds())))
        grant = camera_upload_grant(self.rt.client("s3"), s.frames_bucket, deployment_id,
                                    camera_id, s.max_batch_bytes, expires_s=expires)
        audit.record(self.tables, deployment_id, p.sub, "camera.grant", camera_id,
                     expires_s=expires)
        return {**grant, "expires_s": expires}

    def camera_heartbeat(self, p: Principal, deployment_id: str, camera_id: str,
                         body: Any) -> dict[str, Any]:
        """A camera's gateway reports its state; answers the camera's state as the API sees
        it. Only the camera itself reports for itself."""
        p.require("camera")
        if p.camera != f"{deployment_id}/{camera_id}":
            raise Forbidden("a camera reports only for itself")
        b = parse(Heartbeat, body)
        dep = deployments.get_deployment(self.tables, deployment_id)
        if camera_id not in (dep.cameras or []):
            raise NotFound(f"camera {camera_id} is not on deployment {deployment_id}")
        report = b.model_dump(mode="json")
        report["frames_shed_total"] = sum(b.frames_shed.values())
        entry = camera_health.record_heartbeat(self.tables, dep, camera_id, report, utcnow())
        return {"camera_id": camera_id, "state": entry["state"], "since": entry["since"]}

    def cameras(self, p: Principal, deployment_id: str) -> list[dict[str, Any]]:
        """Each camera of the deployment: live, degraded or dark since when, and its counts."""
        p.require("operator", "auditor", "officer")
        p.require_deployment(deployment_id)
        dep = deployments.get_deployment(self.tables, deployment_id)
        return camera_health.cameras_view(self.tables, dep, utcnow(),
                                          self.rt.settings.gateway_heartbeat_s)

    def register_device(self, p: Principal, deployment_id: str, body: Any) -> dict[str, Any]:
        p.require("officer", "operator")
        p.require_deployment(deployment_id)
        b = parse(DeviceRegistration, body)
        if "operator" not in p.roles and b.officer_id != p.sub:
            raise Forbidden("officers register their own devices")
        return deployments.register_device(
            self.tables, self.rt.client("sns"),
            names.platform_app_arn(self.rt.settings, b.platform), deployment_id, b.officer_id,
            b.platform, b.push_token)

    # -- alerts (officers of the deployment) -----------------------------------------------
    def alerts(self, p: Principal, deployment_id: str) -> list[dict[str, Any]]:
        p.require("officer", "operator", "auditor")
        p.require_deployment(deployment_id)
        deployments.get_deployment(self.tables, deployment_id)
        rows = self.tables.Alert.by_deployment.query(deployment_id, scan_index_forward=False)
        return [adjudication.alert_view(a) for a in rows]

    def _alert_for(self, p: Principal, alert_id: str) -> Any:
        alert = adjudication.get_alert(self.tables, alert_id)
        p.require_deployment(alert.deployment_id)
        return alert

    def alert(self, p: Principal, alert_id: str, query: dict[str, str] | None) -> dict[str, Any]:
        p.require("officer", "operator", "auditor")
        query = query or {}
        if "sig" in query and not link_valid(self._link_secret, alert_id,
                                             query.get("exp", ""), query["sig"]):
            raise GoneError("this alert link has expired or is not valid")
        alert = self._alert_for(p, alert_id)
        view = adjudication.alert_view(alert)
        s3, bucket = self.rt.client("s3"), self.rt.settings.evidence_bucket
        view["crop_url"] = None if alert.crop_deleted_at else _presign(s3, bucket, alert.crop_key)
        view["reference_url"] = None
        try:
            subject = self.tables.Subject.get(alert.watchlist_id, alert.subject_id)
            if subject.reference_key:
                view["reference_url"] = _presign(s3, bucket, subject.reference_key)
        except self.tables.Subject.DoesNotExist:
            pass  # the watchlist has been destroyed
        audit.record(self.tables, alert.deployment_id, p.sub, "alert.viewed", alert_id)
        return view

    def adjudicate(self, p: Principal, alert_id: str, body: Any) -> dict[str, Any]:
        p.require("officer")
        b = parse(Adjudication, body)
        self._alert_for(p, alert_id)
        alert = adjudication.adjudicate(self.tables, alert_id, b.decision, p.sub, b.note)
        return adjudication.alert_view(alert)

    def outcome(self, p: Principal, alert_id: str, body: Any) -> dict[str, Any]:
        p.require("officer")
        b = parse(Outcome, body)
        self._alert_for(p, alert_id)
        alert = adjudication.record_outcome(self.tables, alert_id, b.outcome, p.sub)
        return adjudication.alert_view(alert)

    # -- accountability (auditors) ---------------------------------------------------------
    def audit_trail(self, p: Principal, scope: str) -> list[dict[str, Any]]:
        p.require("auditor")
        return audit.entries(self.tables, scope)

    def record(self, p: Principal, deployment_id: str) -> dict[str, Any]:
        p.require("auditor", "operator")
        rec = records.transparency_record(self.tables, deployment_id)
        audit.record(self.tables, deployment_id, p.sub, "record.generated", deployment_id)
        return rec


def _images(b: NewSubject) -> list[tuple[str, bytes]]:
    try:
        return [(f"image {i + 1}", base64.b64decode(x, validate=True))
                for i, x in enumerate(b.images_b64)]
    except (binascii.Error, ValueError):
        raise BadRequestError("images_b64: each image must be base64") from None


def _hint(choice: FaceChoice) -> FaceHint | None:
    if choice is None:
        return None
    if isinstance(choice, int):
        return FaceHint(index=choice)
    return FaceHint(box=tuple(float(v) for v in choice))  # type: ignore[arg-type]


def batch_subject_id(display_name: str, images: list[tuple[str, bytes]]) -> str:
    """The same name and images give the same id: a subject sent twice is enrolled once."""
    h = hashlib.sha256(display_name.encode("utf-8"))
    for _, data in images:
        h.update(hashlib.sha256(data).digest())
    return f"s-{h.hexdigest()[:16]}"


def _presign(s3: Any, bucket: str, key: str) -> str:
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                     ExpiresIn=300)
