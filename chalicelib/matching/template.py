"""Enrollment templates (pure): one embedding per subject from one or more reference images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chalicelib.vision.decode import FrameDecodeError
from chalicelib.vision.decode import decode_image as bounded_decode
from chalicelib.vision.pipeline import FacePipeline
from chalicelib.vision.quality import sharpness

# A reference face at least this many pixels on its shorter side, and at least this sharp
# (variance of the Laplacian of the aligned 112x112 crop), loses nothing for its size or blur.
# 64 px: SFace's input is 112 px, and below ~64 px source pixels the crop is mostly upsampled.
# 40: the LFW dev faces' median sharpness is above it; the quality gate refuses below 10.
FULL_QUALITY_PX = 64.0
FULL_QUALITY_SHARPNESS = 40.0
# Reference photos may be bigger than camera frames (a 24-megapixel camera's, 72 MB decoded,
# well inside the API function's 512 MB); a PNG stating more is refused before decoding.
MAX_REFERENCE_PIXELS = 25_000_000


class EnrollmentError(ValueError):
    """A reference image cannot be used; the message says why, for the operator."""


@dataclass(frozen=True)
class Template:
    embedding: np.ndarray  # (dim,) float32, L2-normalised
    image_quality: list[float]  # quality (0..1, see image_quality()) of each reference face


def image_quality(detector_score: float, crop_sharpness: float, face_px: float) -> float:
    """Quality of one reference face in 0..1: detector score x size factor x sharpness factor.

    Each factor is 1 at or above the level where it stops mattering and falls linearly below,
    so an operator sees at once which reference is small, blurred or barely a face.
    """
    size = min(1.0, max(0.0, face_px) / FULL_QUALITY_PX)
    sharp = min(1.0, max(0.0, crop_sharpness) / FULL_QUALITY_SHARPNESS)
    return round(float(detector_score) * size * sharp, 4)


def fuse_embeddings(
    embeddings: np.ndarray, quality: Sequence[float] | None = None
) -> np.ndarray:
    """Normalised mean of the normalised embeddings: the subject's template.

    The mean template beat max-over-images on the open-set protocol (FACTS.md). Quality is
    reported, not used as a weight: the reference images that pass enrollment are all usable,
    and weighting by a detector-derived score would let one sharp but unusual photo dominate.
    """
    del quality
    e = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    mean = e.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def decode_image(data: bytes, label: str) -> np.ndarray:
    """Reference images may be JPEG or PNG (operators upload what they have), within the same
    limits before decoding as frames (vision/decode.py)."""
    try:
        return bounded_decode(data, MAX_REFERENCE_PIXELS)
    except FrameDecodeError as exc:
        if exc.reason in ("too_large", "too_many_scans", "too_many_segments"):
            raise EnrollmentError(f"{label}: {exc}") from None
        raise EnrollmentError(f"{label}: not a readable JPEG or PNG image ({exc})") from None


def build_template(pipeline: FacePipeline, images: list[tuple[str, bytes]]) -> Template:
    """Template from each image's single face, with a quality per reference image.

    An image with no usable face or with several faces is refused: a reference of the wrong
    person is the surest way to accuse an innocent one.
    """
    if not images:
        raise EnrollmentError("no reference image given")
    embeddings, quality = [], []
    for label, data in images:
        analysis = pipeline.analyze(decode_image(data, label))
        if len(analysis.faces) > 1:
            raise EnrollmentError(
                f"{label}: {len(analysis.faces)} faces found; "
                "a reference image must show one person"
            )
        if not analysis.faces:
            why = ", ".join(sorted(analysis.rejected)) or "no face detected"
            raise EnrollmentError(f"{label}: no usable face ({why})")
        face = analysis.faces[0]
        area = face.detection.width * face.detection.height
        if any(d.width * d.height > area for d in analysis.refused):
            # The photo's main face failed the gate: the usable one is someone in the background.
            why = ", ".join(sorted(analysis.rejected))
            raise EnrollmentError(f"{label}: the main face is not usable ({why}); "
                                  "the only usable face is a smaller one, maybe a bystander")
        embeddings.append(face.embedding)
        det = face.detection
        quality.append(image_quality(det.score, sharpness(face.crop), min(det.width, det.height)))
    return Template(fuse_embeddings(np.stack(embeddings), quality), quality)
