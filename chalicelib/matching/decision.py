"""The open-set decision: alert on the top candidate only when it reaches the threshold.

The threshold is not a constant: it is derived per deployment from the operator's target false
positive identification rate and the watchlist's size (see calibration.py), and recorded on the
deployment and on every alert together with the score and the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from chalicelib.matching.index import Candidate


@dataclass(frozen=True)
class Match:
    """The best track of one watchlist subject in one batch: what becomes an alert."""

    subject_id: str
    score: float
    frame_index: int
    captured_at: datetime
    box: tuple[float, float, float, float]
    crop: np.ndarray  # the best face with some context, BGR, for the officer's adjudication
    track_faces: int = 1  # faces of the person in this batch


def decide(candidates: list[Candidate], threshold: float) -> Candidate | None:
    """The top-1 candidate if its score reaches the threshold (score >= threshold), else None.

    Candidates need not be sorted; ties keep the first listed. Only the top candidate is ever
    alerted on: a lower-ranked subject above threshold means the face resembles several
    watchlist subjects, and the best of them is the only defensible identification.
    """
    if not candidates:
        return None
    top = max(candidates, key=lambda c: c.score)
    return top if top.score >= threshold else None
