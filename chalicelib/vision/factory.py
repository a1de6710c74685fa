"""Builds the face pipeline from Settings: which model files, their hashes, threads, gates."""

from __future__ import annotations

import functools

import numpy as np

from chalicelib.settings import Settings
from chalicelib.vision.detect import RetinaFaceDetector
from chalicelib.vision.embed import SFaceRecognizer, model_id_for, space_id
from chalicelib.vision.models import ModelSpec, default_detector_spec, default_recognizer_spec
from chalicelib.vision.pipeline import FacePipeline
from chalicelib.vision.quality import QualityPolicy


def detector_spec(s: Settings) -> ModelSpec:
    if s.detector_path:
        return ModelSpec(s.detector_path, s.detector_sha256)
    return default_detector_spec()


def recognizer_spec(s: Settings) -> ModelSpec:
    if s.recognizer_path:
        return ModelSpec(s.recognizer_path, s.recognizer_sha256,
                         s.recognizer_prepared_sha256)
    return default_recognizer_spec()


@functools.lru_cache(maxsize=4)
def embedding_centre(s: Settings) -> np.ndarray | None:
    """The background centre subtracted from every embedding (None when switched off)."""
    if not s.embed_centre:
        return None
    from chalicelib.vision.centre import load_centre

    return load_centre(model_id_for(recognizer_spec(s)), s.embed_centre_path or None)


def embedding_config(s: Settings) -> str:
    """The settings that shape each face's embedding before the recognizer sees it."""
    config = (f"min_side={s.detect_min_side},max_side={s.detect_max_side},"
              f"mirror={s.mirror_landmarks},flip={s.embed_flip}")
    return (config + (",landmarks=full" if s.landmarks_full_size else "")
            + (",small=full" if s.small_faces_full_size else ""))


def space_with(s: Settings, centre: np.ndarray | None) -> str:
    return space_id(model_id_for(recognizer_spec(s)), centre, embedding_config(s))


def embedding_id(s: Settings) -> str:
    """The id of the embedding space these settings make, without loading the model."""
    return space_with(s, embedding_centre(s))


def quality_policy(s: Settings) -> QualityPolicy:
    return QualityPolicy(min_face_px=s.min_face_px)


@functools.lru_cache(maxsize=2)
def build_pipeline(s: Settings) -> FacePipeline:
    """One onnxruntime session per model per process (cached on the settings)."""
    detector = RetinaFaceDetector.from_spec(
        detector_spec(s), threads=s.onnx_threads, spinning=s.onnx_spinning,
        max_side=s.detect_max_side,
        min_side=s.detect_min_side,
    )
    recognizer = SFaceRecognizer.from_spec(
        recognizer_spec(s), threads=s.onnx_threads, spinning=s.onnx_spinning, flip=s.embed_flip,
        centre=embedding_centre(s), model_id=embedding_id(s),
    )
    return FacePipeline(detector, recognizer, quality_policy(s),
                        mirror_landmarks=s.mirror_landmarks,
                        landmarks_full_size=s.landmarks_full_size,
                        small_faces_full_size=s.small_faces_full_size)
