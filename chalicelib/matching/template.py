"""Enrollment templates (pure): one embedding per subject from one or more reference images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chalicelib.matching.expected_tpir import agreement
from chalicelib.matching.subject_face import FaceHint, choose_subject_face
from chalicelib.settings import Settings
from chalicelib.vision.pipeline import FacePipeline
from chalicelib.vision.quality import sharpness
from chalicelib.vision.reference_image import ReferenceImageError, decode_reference

# A reference face at least this many pixels on its shorter side, and at least this sharp
# (variance of the Laplacian of the aligned 112x112 crop), loses nothing for its size or blur.
# 64 px: SFace's input is 112 px, and below ~64 px source pixels the crop is mostly upsampled.
# 40: the LFW dev faces' median sharpness is above it; the quality gate refuses below 10.
FULL_QUALITY_PX = 64.0
FULL_QUALITY_SHARPNESS = 40.0
MAX_REFERENCE_PIXELS = Settings.max_reference_pixels  # the default; callers pass the setting


class EnrollmentError(ValueError):
    """A reference image cannot be used; the message says why, for the operator. `results`:
    the outcome of each reference image, when they were assessed (for per-image reports)."""

    def __init__(self, message: str, results: Sequence[ReferenceResult] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


@dataclass(frozen=True)
class ReferenceResult:
    """One reference image, used or refused: what an operator's report says about it."""

    label: str
    code: str  # "" when used; else a short reason (subject_face.*, reference_image codes)
    reason: str  # for the operator ("" when used)
    faces: int = 0  # faces detected
    box: tuple[int, int, int, int] | None = None  # the subject's face, when used
    quality: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def used(self) -> bool:
        return not self.code


@dataclass(frozen=True)
class Template:
    embedding: np.ndarray  # (dim,) float32, L2-normalised
    image_quality: list[float]  # quality (0..1, see image_quality()) of each reference face
    results: list[ReferenceResult] = field(default_factory=list)
    agreement: float | None = None  # mean cosine between the references (expected_tpir.py)


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


def assess_reference(
    pipeline: FacePipeline, label: str, data: bytes, hint: FaceHint | None = None,
    max_pixels: int = MAX_REFERENCE_PIXELS,
) -> ReferenceResult:
    """The subject's face in one reference image (subject_face.choose_subject_face), embedded,
    or why there is none. Oversized images are refused before they are decoded."""
    try:
        image = decode_reference(data, max_pixels)
    except ReferenceImageError as exc:
        return ReferenceResult(label, exc.code, f"{label}: {exc}")
    analysis = pipeline.analyze(image)
    dets = [f.detection for f in analysis.faces] + list(analysis.refused)
    boxes = np.array([d.box[:4] for d in dets], dtype=np.float32).reshape(-1, 4)
    usable = np.arange(len(dets)) < len(analysis.faces)
    choice = choose_subject_face(boxes, usable, image.shape[:2], hint,
                                 gate_reasons=", ".join(sorted(analysis.rejected)))
    if choice.index is None:
        return ReferenceResult(label, choice.code, f"{label}: {choice.reason}", len(dets))
    face = analysis.faces[choice.index]
    det = face.detection
    quality = image_quality(det.score, sharpness(face.crop), min(det.width, det.height))
    box = tuple(int(round(float(v))) for v in det.box[:4])
    return ReferenceResult(label, "", "", len(dets), box, quality,  # type: ignore[arg-type]
                           face.embedding)


def build_template(
    pipeline: FacePipeline, images: list[tuple[str, bytes]],
    hints: Sequence[FaceHint | None] | None = None, max_pixels: int = MAX_REFERENCE_PIXELS,
) -> Template:
    """Template from the subject's face in each image, with a quality per reference image.

    Every image must give the subject's face: an image where it cannot be told apart from a
    bystander's is refused (a reference of the wrong person is the surest way to accuse an
    innocent one), and so is the subject, with every image's outcome in the error.
    """
    if not images:
        raise EnrollmentError("no reference image given")
    hints = list(hints) if hints is not None else [None] * len(images)
    if len(hints) != len(images):
        raise EnrollmentError(f"{len(hints)} face choices given for {len(images)} images")
    results = [assess_reference(pipeline, label, data, hint, max_pixels)
               for (label, data), hint in zip(images, hints, strict=True)]
    refused = [r for r in results if not r.used]
    if refused:
        raise EnrollmentError("; ".join(r.reason for r in refused), results)
    return template_of(results)


def template_of(results: Sequence[ReferenceResult]) -> Template:
    """The subject's template from references that were all used."""
    embeddings = np.stack([r.embedding for r in results])  # type: ignore[misc]
    quality = [float(r.quality) for r in results]  # type: ignore[arg-type]
    return Template(fuse_embeddings(embeddings, quality), quality, list(results),
                    agreement(embeddings))
