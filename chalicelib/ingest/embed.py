"""The chosen views of every track of a batch into one embedding per track: the views
mirror-steadied, embedded in one call for the whole batch, and each track's mean normalised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.ingest.views import View
from chalicelib.vision.pipeline import FacePipeline
from chalicelib.vision.track import Track


@dataclass
class Plan:
    """A track to decide on: its summary (carried to the next batch) and the views to embed."""

    track: Track[View]
    summary: CarriedTrack
    views: list[View]


def embed_views(plans: list[Plan], pipeline: FacePipeline, out: BatchOutcome) -> np.ndarray:
    """One embedding per view, in the order of the plans and their views."""
    with out.timed("mirror"):
        crops = [pipeline.steadied_crop(v.pixels(), v.local(), v.face.crop, v.scale)
                 for p in plans for v in p.views]
    with out.timed("embed"):
        embeddings = pipeline.embed(crops)
    out.faces_embedded += len(crops)
    return embeddings


def fuse(plans: list[Plan], embeddings: np.ndarray) -> np.ndarray:
    """Each plan's embeddings averaged and normalised: one row per plan."""
    fused, offset = [], 0
    for p in plans:
        mean = embeddings[offset : offset + len(p.views)].mean(axis=0)
        fused.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        offset += len(p.views)
    return np.stack(fused)
