"""Enrollment templates (pure): one embedding per subject from one or more reference images."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from chalicelib.vision.pipeline import FacePipeline


class EnrollmentError(ValueError):
    """A reference image cannot be used; the message says why, for the operator."""


@dataclass(frozen=True)
class Template:
    embedding: np.ndarray  # (dim,) float32, L2-normalised
    image_quality: list[float]  # detector score of each reference face, in input order


def decode_image(data: bytes, label: str) -> np.ndarray:
    """Reference images may be JPEG or PNG (operators upload what they have)."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise EnrollmentError(f"{label}: not a readable JPEG or PNG image")
    return image


def build_template(pipeline: FacePipeline, images: list[tuple[str, bytes]]) -> Template:
    """Normalised mean of the normalised embeddings of each image's single face.

    The mean template beat max-over-images on the open-set protocol (FACTS.md). An image with no
    usable face or with several faces is refused: a reference of the wrong person is the surest
    way to accuse an innocent one.
    """
    if not images:
        raise EnrollmentError("no reference image given")
    embeddings, quality = [], []
    for label, data in images:
        analysis = pipeline.analyze(decode_image(data, label))
        if len(analysis.faces) > 1:
            raise EnrollmentError(
                f"{label}: {len(analysis.faces)} faces found; a reference image must show one person"
            )
        if not analysis.faces:
            why = ", ".join(sorted(analysis.rejected)) or "no face detected"
            raise EnrollmentError(f"{label}: no usable face ({why})")
        face = analysis.faces[0]
        embeddings.append(face.embedding)
        quality.append(round(float(face.detection.score), 4))
    mean = np.mean(np.stack(embeddings), axis=0)
    return Template((mean / np.linalg.norm(mean)).astype(np.float32), quality)
