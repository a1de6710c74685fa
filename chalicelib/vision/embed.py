"""SFace (MobileFaceNet, 128-d) face embeddings on onnxruntime."""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np

from .models import (
    ModelSpec,
    load_model_bytes,
    make_session,
    prepare_recognizer,
)

MODEL_NAME = "sface-2021dec-int8bq"
_MAX_BATCH = 64  # bounds peak memory on crowded frames; batching buys nothing more on CPU


def model_id_for(spec: ModelSpec) -> str:
    """The recognizer file's id: embeddings are only comparable from the same file."""
    return f"{MODEL_NAME}-{spec.sha256.lower()[:12]}"


def space_id(file_id: str, centre: np.ndarray | None = None, config: str = "") -> str:
    """The embedding space's id: the recognizer file, the centre subtracted from its output
    (chalicelib.vision.centre) and the configuration of the steps before it (detection
    scale, landmarks, flip-sum). Templates and impostor statistics belong to one space: a
    watchlist or a calibration from another one is refused, never silently compared."""
    out = file_id
    if centre is not None:
        out += "-c" + hashlib.sha256(np.asarray(centre, dtype="<f4").tobytes()).hexdigest()[:8]
    if config:
        out += "-p" + hashlib.sha256(config.encode()).hexdigest()[:6]
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class SFaceRecognizer:
    dim = 128

    def __init__(
        self, session: Any, model_id: str, flip: bool = True, centre: np.ndarray | None = None
    ) -> None:
        self.session = session
        self.model_id = model_id
        self.centre = None if centre is None else np.asarray(centre, dtype=np.float32)
        # Flip-summed embeddings are more accurate (FACTS: TPIR@FPIR0.001 0.963 -> 0.973) at
        # twice the compute.
        self.flip = flip
        self._input_name = session.get_inputs()[0].name
        self._output_name = session.get_outputs()[0].name

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, threads: int = 1, flip: bool = True,
        centre: np.ndarray | None = None, model_id: str = "", spinning: bool = False,
    ) -> SFaceRecognizer:
        """`model_id` names the embedding space (see space_id); by default the file and centre."""
        data = load_model_bytes(spec)
        model = data if spec.prepared_sha256 else prepare_recognizer(data)
        model_id = model_id or space_id(model_id_for(spec), centre)
        return cls(make_session(model, threads=threads, spinning=spinning), model_id, flip=flip,
                   centre=centre)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        outs = [
            self.session.run([self._output_name], {self._input_name: batch[i : i + _MAX_BATCH]})[0]
            for i in range(0, len(batch), _MAX_BATCH)
        ]
        return np.concatenate(outs, axis=0).astype(np.float32)

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """Embed aligned 112x112 BGR crops; returns float32 [N, 128], rows L2-normalised."""
        if len(crops_bgr) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rgb = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops_bgr])  # N,H,W,3
        if self.flip:
            rgb = np.concatenate([rgb, rgb[:, :, ::-1]], axis=0)
        batch = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32)
        feats = l2_normalize(self._run(batch))
        if self.flip:
            n = len(crops_bgr)
            feats = l2_normalize(feats[:n] + feats[n:])
        if self.centre is not None:
            feats = l2_normalize(feats - self.centre)
        return feats
