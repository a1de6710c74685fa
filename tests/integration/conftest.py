"""Fixtures for tests against the local stack: a runtime, and fresh deployments per test."""

from __future__ import annotations

import copy
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest

from chalicelib.ingest.batch_format import pack_batch
from chalicelib.local.inspect import delivered_pushes
from chalicelib.local.scenes import PEOPLE
from chalicelib.matching.template import EnrollmentError
from chalicelib.ops import watchlists
from chalicelib.ops.deployments import create_deployment, register_device
from chalicelib.ops.watchlists import authorise_watchlist, create_watchlist, enroll_subject
from chalicelib.store import layout
from tests.conftest import shared_data


@pytest.fixture(scope="session")
def rt(local_stack: dict[str, Any]) -> Any:
    from chalicelib.runtime import runtime

    return runtime()


@pytest.fixture(scope="session")
def prepared_recognizer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The recognizer prepared once per session, as the inference layer ships it, for function
    processes of their own (the fault suite's zygote): they load it as it is, without importing
    onnx to prepare it. Their environment."""
    from chalicelib.vision.models import (
        RECOGNIZER_PREPARED_SHA256,
        default_recognizer_spec,
        load_model_bytes,
        prepare_recognizer,
    )

    source = default_recognizer_spec()
    path = tmp_path_factory.mktemp("layer-models") / "recognizer-prepared.onnx"
    path.write_bytes(prepare_recognizer(load_model_bytes(source)))
    return {"LFR_RECOGNIZER_PATH": str(path), "LFR_RECOGNIZER_SHA256": source.sha256,
            "LFR_RECOGNIZER_PREPARED_SHA256": RECOGNIZER_PREPARED_SHA256}


# The first identities of faces/dev by name that the `lfr eval` slice tests use (`--limit`
# this or fewer: a limit takes the first by name, so a smaller slice is part of this one).
FACES_DEV_SLICE = 44


@pytest.fixture(scope="session")
def faces_dev_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photos of the first FACES_DEV_SLICE identities of faces/dev through the worker's
    pipeline (detection, quality gate, embedding), once per pytest process, kept as `lfr eval
    --cache` keeps them: the eval tests pass it to `--cache` instead of each embedding the same
    photos again. Both modules run on one xdist worker (tests/conftest.py `schedule_group`)."""
    from chalicelib.evaluation.openset import (
        FaceCache,
        embed_images,
        list_identities,
        pipeline_key,
        select_identities,
    )
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    identities = select_identities(list_identities(shared_data("faces", "dev")),
                                   limit=FACES_DEV_SLICE)
    settings = Settings.from_env()
    path = tmp_path_factory.mktemp("faces-dev") / "faces.npz"
    cache = FaceCache(embedding_id(settings), path, pipeline_key(settings))
    embed_images([p for v in identities.values() for p in v], settings, cache, progress=False)
    assert path.exists()
    return path


@dataclass
class Scenario:
    rt: Any
    endpoint: str
    deployment_id: str
    watchlist_id: str
    camera_id: str
    subjects: dict[str, str]  # display name -> subject id
    devices: list[str]  # endpoint ARNs

    def upload(self, sequence: int, frames: list[bytes], at: datetime | None = None,
               interval_s: float = 0.2) -> str:
        now = at or datetime.now(UTC)
        stamped = [(now + timedelta(seconds=interval_s * i), f) for i, f in enumerate(frames)]
        key = layout.batch_key(self.deployment_id, self.camera_id, sequence)
        body = pack_batch(self.deployment_id, self.camera_id, sequence, stamped)
        self.rt.client("s3").put_object(Bucket=self.rt.settings.frames_bucket, Key=key, Body=body)
        return key

    def put_malformed(self, frame: bytes) -> str:
        """A batch whose manifest lacks each frame's capture time (every try fails): its key."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("manifest.json", json.dumps({
                "format": "lfr-frame-batch/1", "deployment_id": self.deployment_id,
                "camera_id": self.camera_id, "frames": [{"name": "000000.jpg"}]}))
            zf.writestr("000000.jpg", frame)
        key = layout.batch_key(self.deployment_id, self.camera_id, 0)
        self.rt.client("s3").put_object(Bucket=self.rt.settings.frames_bucket, Key=key,
                                        Body=buf.getvalue())
        return key

    def alerts(self) -> list[Any]:
        return list(self.rt.tables.Alert.by_deployment.query(self.deployment_id))

    def pushes(self) -> list[Any]:
        return delivered_pushes(self.endpoint, self.devices)


def jpeg(path: Path) -> bytes:
    """A file as the JPEG bytes a camera would send (PNG references are re-encoded)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def build_scenario(rt: Any, endpoint: str, enroll: dict[str, list[Path]], devices: int = 1,
                   threshold: float | None = None, skip_unusable: bool = False,
                   limit: int | None = None, target_fpir: float | None = None,
                   cameras: tuple[str, ...] = ("cam-1",)) -> Scenario:
    """A watchlist of `enroll` (name -> reference photos), authorised by a second operator, a
    deployment of `cameras` bound to it, and `devices` officers' phones registered on it.
    Tests use it through `scenario_factory`; benchmarks call it directly."""
    tag = uuid.uuid4().hex[:8]
    pipeline = rt.pipeline
    wl = create_watchlist(rt.tables, f"test {tag}", pipeline.model_id, created_by="operator-1")
    subjects = {}
    for name, paths in enroll.items():
        if limit is not None and len(subjects) >= limit:
            break
        images = [(str(p), p.read_bytes()) for p in paths]
        try:
            subjects[name] = enroll_subject(
                rt.tables, rt.client("s3"), rt.settings.evidence_bucket, pipeline, wl, name,
                images, source="test", reason="test").subject_id
        except EnrollmentError:
            if not skip_unusable:
                raise
    authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wl,
                        "operator-2")
    dep = create_deployment(
        rt.tables, f"test {tag}", wl, list(cameras),
        rt.settings.match_threshold if threshold is None else threshold,
        target_fpir=target_fpir, deployment_id=f"dep-{tag}")
    arns = []
    for i in range(devices):
        arns.append(register_device(
            rt.tables, rt.client("sns"),
            _platform_arn(rt), dep, f"officer-{i}", "gcm", f"token-{tag}-{i}")["endpoint_arn"])
    return Scenario(rt, endpoint, dep, wl, cameras[0], subjects, arns)


@contextmanager
def templates_built_once(built: dict[tuple[Any, ...], Any]) -> Iterator[None]:
    """While a scenario enrolls its subjects: each reference photo's template is built once by
    the real pipeline (kept in `built`), and every later enrollment of that photo stores a copy
    of it. The same photos recur (Cory Gardner's in ~150 scenarios a run; ~0.11 CPU-s each)."""
    build = watchlists.build_template

    def once(pipeline: Any, images: list[tuple[str, bytes]], *args: Any) -> Any:
        key = (id(pipeline), tuple(images), repr(args))
        if key not in built:  # a refused photo raises: never kept, refused again each time
            built[key] = (pipeline, build(pipeline, images, *args))  # the pipeline kept: its id
        return copy.deepcopy(built[key][1])

    watchlists.build_template = once  # type: ignore[assignment]
    try:
        yield
    finally:
        watchlists.build_template = build  # type: ignore[assignment]


@pytest.fixture(scope="session")
def reference_templates() -> dict[tuple[Any, ...], Any]:
    """The templates of the scenarios' reference photos, per pytest process."""
    return {}


@pytest.fixture
def scenario_factory(rt: Any, local_stack: dict[str, Any],  # type: ignore[no-untyped-def]
                     reference_templates: dict[tuple[Any, ...], Any]):
    def make(enroll: dict[str, list[Path]], **kw: Any) -> Scenario:
        with templates_built_once(reference_templates):
            return build_scenario(rt, str(local_stack["endpoint"]), enroll, **kw)

    return make


def _platform_arn(rt: Any) -> str:
    from chalicelib import names

    return names.platform_app_arn(rt.settings, "gcm")


def demo_person(name: str, n: int) -> Path:
    return PEOPLE / name / f"{n}.jpg"


def log_records(caplog: Any, message: str) -> list[dict[str, Any]]:
    """The structured fields of the log records with the given message (powertools Logger)."""
    return [vars(r) for r in caplog.records if r.getMessage() == message]


@pytest.fixture
def api(local_stack: dict[str, Any]):  # type: ignore[no-untyped-def]
    from chalice.test import Client

    with Client(local_stack["app"]) as client:
        from chalicelib.local.api_client import ApiClient

        yield ApiClient(client, local_stack["settings"].local_auth_secret)


@pytest.fixture(scope="session")
def http_api(local_stack: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The API over real HTTP (tests/integration/http_api.py): its base URL."""
    from tests.integration.http_api import serve_api

    with serve_api(local_stack["app"]) as url:
        yield url
