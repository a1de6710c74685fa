"""The inference layer's prepared recognizer: the exact result of preparing the pinned model,
loaded without the `onnx` package, giving the same embeddings and model id."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chalicelib.vision.embed import SFaceRecognizer
from chalicelib.vision.models import (
    RECOGNIZER_PREPARED_SHA256,
    ModelIntegrityError,
    ModelSpec,
    default_recognizer_spec,
    layer_model_env,
    load_model_bytes,
    prepare_recognizer,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "prepared.onnx"
    path.write_bytes(prepare_recognizer(load_model_bytes(default_recognizer_spec())))
    return path


def test_preparing_the_pinned_model_gives_the_pinned_prepared_bytes(prepared: Path) -> None:
    """If onnx or the fix changes, this fails: re-pin RECOGNIZER_PREPARED_SHA256 (and the
    layer's config) only after checking that embeddings did not change."""
    assert hashlib.sha256(prepared.read_bytes()).hexdigest() == RECOGNIZER_PREPARED_SHA256
    assert layer_model_env()["LFR_RECOGNIZER_PREPARED_SHA256"] == RECOGNIZER_PREPARED_SHA256


def test_prepared_file_embeds_as_the_shipped_one_under_the_same_model_id(prepared: Path) -> None:
    source = default_recognizer_spec()
    spec = ModelSpec(str(prepared), source.sha256, RECOGNIZER_PREPARED_SHA256)
    a, b = SFaceRecognizer.from_spec(source), SFaceRecognizer.from_spec(spec)
    assert a.model_id == b.model_id
    crops = [np.random.default_rng(i).integers(0, 255, (112, 112, 3), np.uint8)
             for i in range(4)]
    assert np.array_equal(a.embed(crops), b.embed(crops))


def test_a_prepared_spec_refuses_any_other_file(tmp_path: Path) -> None:
    source = default_recognizer_spec()
    # The int8 file where the prepared one should be (an old layer): refused, not re-fixed.
    spec = ModelSpec(source.path, source.sha256, RECOGNIZER_PREPARED_SHA256)
    with pytest.raises(ModelIntegrityError, match="prepared model sha256 mismatch"):
        SFaceRecognizer.from_spec(spec)


def test_the_worker_never_imports_onnx_with_prepared_models(prepared: Path) -> None:
    """`import onnx` costs ~0.7 CPU-s of a cold start: with the layer's models the app and the
    face pipeline load without it."""
    code = ("import sys, json; import app; from chalicelib.runtime import runtime;"
            "p = runtime().pipeline; p.analyze(__import__('numpy').zeros((64, 64, 3), 'uint8'));"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'onnx')))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LFR_STAGE": "dev",
           "LFR_RECOGNIZER_PATH": str(prepared),
           "LFR_RECOGNIZER_SHA256": default_recognizer_spec().sha256,
           "LFR_RECOGNIZER_PREPARED_SHA256": RECOGNIZER_PREPARED_SHA256}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
