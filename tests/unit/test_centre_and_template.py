"""Embedding centre, embedding-space ids, and which face of a photo stands for its person."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chalicelib.evaluation.openset import ImageFaces
from chalicelib.matching.template import EnrollmentError, build_template
from chalicelib.vision.centre import (
    centre_document,
    centre_from_document,
    load_centre,
    measure_centre,
)
from chalicelib.vision.embed import SFaceRecognizer, model_id_for, space_id
from chalicelib.vision.models import default_recognizer_spec
from chalicelib.vision.pipeline import FaceObservation, FrameAnalysis
from chalicelib.vision.types import Detection


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_centre_weighs_each_identity_once() -> None:
    a, b = _unit([1, 0, 0]), _unit([0, 1, 0])
    embs = np.stack([a] * 10 + [b])
    centre = measure_centre(embs, ["A"] * 10 + ["B"])
    assert np.allclose(centre, (a + b) / 2, atol=1e-6)  # not (10a + b) / 11


def test_centre_document_round_trip_and_wrong_model(tmp_path: Path) -> None:
    centre = np.array([0.25, -0.125, 0.5], dtype=np.float32)
    doc = centre_document(centre, "model-x", {"n_identities": 2})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert np.array_equal(load_centre("model-x", path), centre)
    with pytest.raises(ValueError, match="model-y"):
        centre_from_document(doc, "model-y")
    with pytest.raises(FileNotFoundError, match="measure-centre"):
        load_centre("model-x", tmp_path / "missing.json")


def test_embedding_space_id_carries_the_centre_and_the_configuration() -> None:
    import dataclasses

    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    base = model_id_for(default_recognizer_spec())
    c1, c2 = np.full(128, 0.1, np.float32), np.full(128, 0.2, np.float32)
    assert space_id(base) == base
    assert space_id(base, c1).startswith(base + "-c")
    assert space_id(base, c1) != space_id(base, c2)
    assert space_id(base, c1, "mirror=True") != space_id(base, c1, "mirror=False")
    # Shipped defaults name the space the shipped statistics were measured in; any setting
    # that changes the embeddings names another, for which there are none.
    s = Settings()
    shipped = embedding_id(s)
    assert (Path(__file__).parents[2] / "chalicelib/matching/stats" / f"{shipped}.json").exists()
    for change in ({"mirror_landmarks": False}, {"embed_flip": False}, {"detect_min_side": 320},
                   {"embed_centre": False}):
        assert embedding_id(dataclasses.replace(s, **change)) != shipped, change
    assert embedding_id(dataclasses.replace(s, min_face_px=40)) == shipped  # the gate only


class _Out:
    name = "x"


class _FakeSession:
    """Returns a fixed raw embedding per input row (the face and its mirror alike)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def get_inputs(self) -> list[_Out]:
        return [_Out()]

    def get_outputs(self) -> list[_Out]:
        return [_Out()]

    def run(self, _names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(feed["x"])
        return [np.tile(self.rows, (n // len(self.rows), 1))]


def test_recognizer_subtracts_the_centre_then_normalises() -> None:
    raw = np.stack([_unit([1, 1, 0]), _unit([1, -1, 0])])
    centre = (raw[0] + raw[1]) / 2  # the shared component of the two faces
    crops = [np.zeros((112, 112, 3), np.uint8)] * 2
    plain = SFaceRecognizer(_FakeSession(raw), "m", flip=False).embed(crops)
    centred = SFaceRecognizer(_FakeSession(raw), "m", flip=False, centre=centre).embed(crops)
    assert plain[0] @ plain[1] == pytest.approx(0.0, abs=1e-6)
    assert centred[0] @ centred[1] == pytest.approx(-1.0, abs=1e-6)  # shared part removed
    assert np.allclose(np.linalg.norm(centred, axis=1), 1.0)


def _det(x1: float, y1: float, x2: float, y2: float) -> Detection:
    return Detection(box=np.array([x1, y1, x2, y2], np.float32), score=0.99,
                     landmarks=np.zeros((5, 2), np.float32))


class _OnePipeline:
    def __init__(self, analysis: FrameAnalysis) -> None:
        self.analysis = analysis

    def analyze(self, _image: np.ndarray) -> FrameAnalysis:
        return self.analysis


def _jpeg() -> bytes:
    import cv2

    return cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()


def test_reference_refused_when_its_main_face_failed_the_gate() -> None:
    bystander = FaceObservation(_det(0, 0, 20, 20), np.zeros((112, 112, 3), np.uint8),
                                _unit([1, 0, 0]))
    main = _det(20, 20, 60, 60)
    analysis = FrameAnalysis([bystander], {"too_blurry": 1}, {}, [main])
    with pytest.raises(EnrollmentError, match="no usable face of the subject .too_blurry."):
        build_template(_OnePipeline(analysis), [("ref.jpg", _jpeg())])  # type: ignore[arg-type]
    # A refused face smaller than the usable one (a blurred passer-by behind) is no reason.
    analysis = FrameAnalysis([FaceObservation(main, bystander.crop, _unit([1, 0, 0]))],
                             {"too_blurry": 1}, {}, [_det(0, 0, 20, 20)])
    assert build_template(_OnePipeline(analysis), [("ref.jpg", _jpeg())]).image_quality


def test_labelled_face_is_chosen_before_the_gate() -> None:
    faces = ImageFaces(
        embeddings=np.stack([_unit([1, 0, 0])]), det_scores=np.array([0.99]),
        boxes=np.array([[0, 0, 30, 30]], np.float32), sharpness=np.array([50.0]),
        shape=(150, 150), rejected=1,
        refused_boxes=np.array([[50, 50, 100, 100]], np.float32),
    )
    assert faces.central() is None  # the person the folder names was refused: no stand-in
    faces.refused_boxes = np.zeros((0, 4), np.float32)
    assert faces.central() == 0


def test_measured_centre_names_the_space_the_pipeline_will_load(tmp_path: Path) -> None:
    from chalicelib.evaluation.cli import _measure_centre
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    rng = np.random.default_rng(0)
    embs = [_unit(list(v)) for v in rng.normal(size=(6, 128)) + 1.0]
    faces = {"a.jpg": ImageFaces(np.stack(embs[:3]), np.ones(3), np.zeros((3, 4)), np.ones(3),
                                 (10, 10))}
    path = tmp_path / "centre.json"
    space, centred_faces, centred = _measure_centre(
        path, Settings(), embs, ["A", "A", "B", "B", "C", "C"], faces, {"n_identities": 3})
    loaded = load_centre(model_id_for(default_recognizer_spec()), path)
    assert space == embedding_id(Settings(embed_centre_path=str(path)))
    expected = (embs[0:3] - loaded) / np.linalg.norm(embs[0:3] - loaded, axis=1, keepdims=True)
    assert np.allclose(centred_faces["a.jpg"].embeddings, expected, atol=1e-6)
    assert np.allclose(centred[0], expected[0], atol=1e-6)
