"""Typed settings, built once from the environment (Chalice stage config sets the same names).

This is the only module that reads os.environ; everything else is handed a Settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

# Policy: a watchlist is destroyed within 24 h of its deployment's end (FACTS: UK LFR practice);
# the retention sweep that enforces it runs this often (app.py schedules it).
POLICY_LIMIT_H = 24
SWEEP_INTERVAL_MIN = 15
# Where `lfr` keeps what it writes for itself, relative to where it runs: the local stack's state
# (local/state.py) and enrollment journals (ops/cli.py).
WORK_DIR = Path(".lfr")


class ConfigurationError(RuntimeError):
    """The service itself is set up wrong (e.g. a model file missing where the stage config
    says it is): a 500 for the operator of the service to fix, never the caller's 4xx."""


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    region: str = "eu-west-2"
    # None on AWS; http://127.0.0.1:PORT for moto server, http://localhost:4566 for LocalStack.
    endpoint_url: str | None = None
    # Per-service endpoints over endpoint_url, as boto3 reads them: AWS_ENDPOINT_URL_<SERVICE ID>
    # (e.g. AWS_ENDPOINT_URL_DYNAMODB), kept as (SERVICE ID, url) pairs; clients.endpoint_url
    # resolves a client name to its variable. A mixed stack (LocalStack + DynamoDB on moto) is
    # one environment away.
    service_endpoints: tuple[tuple[str, str], ...] = ()
    # Keys every client is given (access key id, secret, session token); empty: boto3's own
    # chain (the environment, a profile, the function's role). Never read from LFR_*: only the
    # local stack sets them (its placeholder keys, local/state.py), so that `lfr` reaches a
    # stack started by `lfr local up` without writing them into os.environ.
    credentials: tuple[str, ...] = field(default=(), repr=False)
    # Names of everything the app talks to. One prefix per stage keeps stages apart in one
    # account: empty means lfr-<stage>, and each name empty means <prefix>-<suffix> below.
    prefix: str = ""
    frames_bucket: str = ""
    evidence_bucket: str = ""
    frames_queue: str = ""
    alerts_queue: str = ""
    deployment_topic: str = ""
    ops_topic: str = ""  # CloudWatch alarms for operators (chalicelib/monitoring.py)
    push_platform_app: str = ""
    # The Secrets Manager secret that signs alert links where LFR_LINK_SECRET is not set (every
    # deployed stage: infra/cfn.py generates it; chalicelib/link_secret.py reads it).
    link_secret_name: str = ""
    # Fixed cosine threshold for scores on centred embeddings, used only where no calibrated
    # one is given (a deployment always records its own). 0.44 keeps the per-comparison false
    # match rate of the uncentred 0.5 it replaces (~2 in a million, shipped impostor model).
    match_threshold: float = 0.44
    # A subject seen again on the same camera within this many seconds of its last sighting
    # continues the alert already raised (one alert per person passing, not one per batch).
    realert_after_s: int = 60
    # A match of a subject whose alert an officer ruled false in this deployment, scoring no
    # more than that alert plus this (cosine), is the same look-alike: flagged, not pushed
    # (ops/lookalikes.py). Genuine scores stand well above above-threshold impostors
    # (docs/privacy.md); wider would start to hold back the real subject.
    lookalike_margin: float = 0.05
    track_fusion: bool = True
    # Faces of a track embedded and fused for its first decision; faces embedded per passing
    # in all (a decided track is embedded again only on a clearly better view).
    track_best_k: int = 2
    track_max_embedded: int = 4
    # Tracks continue across the batches of one camera (ingest/continuity.py).
    track_continuity: bool = True
    # Full-frame detection at most this far apart (capture time); between them the detector
    # looks only around the tracks that still want a view. 0: every frame.
    key_interval_s: float = 0.6
    # Auth. On AWS the Cognito authorizer verifies tokens (its user pool ARN is set at deploy);
    # locally the app verifies HS256 tokens signed with this secret. Never set it on AWS.
    cognito_user_pool_arn: str = ""
    local_auth_secret: str = ""
    link_secret: str = ""  # signs the short-lived alert links in pushes
    alert_link_ttl_s: int = 900
    console_url: str = "/console"
    # Camera gateways (chalicelib/gateway/). Upload grants live at most this long (and never
    # past the deployment's end); the gateway renews them at 80% of their lifetime.
    grant_ttl_s: int = 3600
    # How often a gateway reports its state. The API calls a camera dark after three missed
    # reports, and pushes to the deployment's officers once it has been dark this long.
    gateway_heartbeat_s: float = 5.0
    camera_dark_push_s: int = 120
    # Privacy and retention.
    crop_retention_days: int = 31
    # Watchlists (subjects, images, embeddings) are destroyed this long after their deployment
    # ends: the policy's 24 h is the limit, sooner is allowed.
    watchlist_grace_hours: int = 1
    # A watchlist no deployment has bound this long after it was created is destroyed the same
    # way. At most the policy's 24 h less one sweep interval (app.py runs it every 15 min).
    watchlist_unbound_hours: int = 12
    # A frame batch dead-lettered for any reason but a format error (whose frames the worker
    # deletes on its last try) keeps its frames this long after upload, for a redrive once the
    # cause is fixed; the retention sweep deletes them then. Under the frames bucket's 1-day
    # lifecycle rule, which stays as the backstop.
    dead_letter_frames_hours: int = 6
    # A push being sent is another notifier's for this long: longer than one SNS publish at the
    # client's timeouts, shorter than the alerts queue's visibility timeout (120 s) and than
    # the wait before a failed alert is retried (alerts/handler.py), so a retry
    # after a crash mid-publish finds the claim lapsed and sends it (alerts/notify.py).
    push_lease_s: float = 25.0
    # The local event pump only (local/pump.py): a failed record is received again after this
    # many seconds (whole: SQS's visibility timeout), as Lambda's poller backs off. Tests: 0.
    pump_retry_s: int = 1
    # Deliveries of a queue message before SQS moves it to the dead-letter queue.
    max_receive_count: int = 3
    # Frame batch limits (see docs/frame-batch-format.md).
    max_frames_per_batch: int = 64
    max_frame_bytes: int = 4 * 1024 * 1024
    max_frame_pixels: int = 3840 * 2160
    max_batch_bytes: int = 64 * 1024 * 1024
    # Reference images (enrollment) over this many pixels are refused before decoding: 24 MP
    # (6000x4000) decodes to 72 MB in 0.2-0.4 CPU-s here, inside the API function's 512 MB.
    max_reference_pixels: int = 6000 * 4000
    # Vision. Empty model paths mean the files shipped in the pinned wheels.
    detector_path: str = ""
    detector_sha256: str = ""
    recognizer_path: str = ""
    recognizer_sha256: str = ""
    # Set where recognizer_path is the layer's prepared file (vision/models.py): its own sha256.
    recognizer_prepared_sha256: str = ""
    onnx_threads: int = 1
    # Let idle onnxruntime threads spin-wait (lower latency per call, ~2x the CPU at 2 threads).
    onnx_spinning: bool = False
    # numpy's BLAS threads (the 1:N search): its idle threads spin; one reads templates at memory
    # speed (docs/performance.md, issue 12).
    blas_threads: int = 1
    detect_max_side: int = 960
    # Images smaller than this (reference photos, thumbnails) are upscaled before detection:
    # on faces/dev (seed 0, enroll 1) TPIR at FPIR 0.001 went 0.927 -> 0.946 (0.938 at 320).
    detect_min_side: int = 448
    min_face_px: int = 32
    mirror_landmarks: bool = True
    # A face found in a frame shrunk for detection (over detect_max_side) is located again at
    # the frame's full size before it is aligned and embedded: one small detector run per face
    # embedded, for landmarks from four times the pixels (issue 23, lever 1).
    landmarks_full_size: bool = False
    # In such a frame, the regions around the faces the shrunk pass was unsure of (small or low
    # score) are detected again at full size (vision/small_faces.py; issue 23, lever 1).
    small_faces_full_size: bool = False
    embed_flip: bool = True
    # Subtract the background centre of the embedding space (chalicelib.vision.centre);
    # an empty path means the centre shipped with the recognizer.
    embed_centre: bool = True
    embed_centre_path: str = ""
    # The force's last demographic differentials record (`lfr eval --groups ...
    # --differentials-out`): deployment creation warns when its threshold is at or below one
    # where a significant FPIR differential was found. Empty: no record, no such warning.
    differentials_path: str = ""

    def __post_init__(self) -> None:
        limit_h = (POLICY_LIMIT_H * 60 - SWEEP_INTERVAL_MIN) // 60
        if not 1 <= self.watchlist_unbound_hours <= limit_h:
            raise ValueError(
                f"LFR_WATCHLIST_UNBOUND_HOURS={self.watchlist_unbound_hours}: an unbound watchlist "
                f"must be destroyed within the policy's {POLICY_LIMIT_H} h, and the retention "
                f"sweep runs every {SWEEP_INTERVAL_MIN} min: 1 to {limit_h} h")
        if not 1 <= self.dead_letter_frames_hours <= limit_h:
            raise ValueError(
                f"LFR_DEAD_LETTER_FRAMES_HOURS={self.dead_letter_frames_hours}: a dead-lettered "
                f"batch's frames are deleted by the sweep (every {SWEEP_INTERVAL_MIN} min) before "
                f"the frames bucket's 1-day rule: 1 to {limit_h} h")
        if not self.prefix:
            object.__setattr__(self, "prefix", f"lfr-{self.stage}")
        for name, suffix in _DERIVED_NAMES.items():
            if not getattr(self, name):
                object.__setattr__(self, name, f"{self.prefix}-{suffix}")

    @property
    def table_prefix(self) -> str:
        return self.prefix

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """AWS's own variables for region and endpoint; LFR_<FIELD> for every other field."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "stage": _get(env, "LFR_STAGE", "dev"),
            "region": _get(env, "AWS_REGION", _get(env, "AWS_DEFAULT_REGION", "eu-west-2")),
            "endpoint_url": env.get("AWS_ENDPOINT_URL") or None,
            "service_endpoints": tuple(sorted(
                (k.removeprefix(_SERVICE_ENDPOINT), v) for k, v in env.items()
                if k.startswith(_SERVICE_ENDPOINT) and v)),
        }
        for f in fields(cls):
            raw = env.get("LFR_" + f.name.upper())
            if f.name in values or f.name == "credentials" or raw is None or raw == "":
                continue
            values[f.name] = _cast(f.type, raw, f.name)
        return cls(**values)  # type: ignore[arg-type]


_SERVICE_ENDPOINT = "AWS_ENDPOINT_URL_"

_DERIVED_NAMES = {
    "frames_bucket": "frames",
    "evidence_bucket": "evidence",
    "frames_queue": "frames",
    "alerts_queue": "alerts",
    "deployment_topic": "deployments",
    "ops_topic": "ops",
    "push_platform_app": "officers",
    "link_secret_name": "link-secret",
}


def _cast(type_name: object, raw: str, name: str) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return raw
    except ValueError as exc:
        raise ValueError(f"setting LFR_{name.upper()}={raw!r} is not a valid {kind}") from exc
