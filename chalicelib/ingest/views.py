"""A track's views: what is kept of each face it links, which views keep their pixels while
the batch goes on, and which are embedded (the budget of faces per passing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from chalicelib.ingest.batch_format import Frame
from chalicelib.ingest.continuity import CarriedTrack
from chalicelib.ingest.policy import FusionPolicy
from chalicelib.vision.detect import crop_around
from chalicelib.vision.pipeline import GatedFace
from chalicelib.vision.track import Track
from chalicelib.vision.types import Detection


@dataclass
class View:
    """One face of a track, enough to embed it later and show it to an officer."""

    frame_index: int
    captured_at: datetime
    face: GatedFace
    scale: float  # the frame's detection scale (the mirror pass must see the face as big)
    work: np.ndarray | None = None  # the frame around the face; dropped once not a best view
    origin: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, frame: Frame, image: np.ndarray, scale: float, face: GatedFace) -> View:
        x1, y1, x2, y2 = (float(v) for v in face.detection.box[:4])
        # Room for the mirror pass (twice the face) and the officer's crop (matches.context_crop).
        work, xa, ya = crop_around(image, (x1 + x2) / 2, (y1 + y2) / 2,
                                   1.1 * max(x2 - x1, y2 - y1) + 2)
        return cls(frame.index, frame.captured_at, face, scale,
                   None if work is None else work.copy(), (xa, ya))

    def pixels(self) -> np.ndarray:
        """The frame around the face: every view `to_embed` chooses still holds it."""
        assert self.work is not None, "a view chosen to embed keeps its pixels"
        return self.work

    def local(self) -> Detection:
        """The detection in the coordinates of `work`, whose top-left is `origin`."""
        o = np.asarray(self.origin, np.float32)
        det = self.face.detection
        return Detection(det.box - np.tile(o, 2), det.score, det.landmarks - o)


def keep_best(tracks: Iterable[Track[View]], t: float, k: int) -> None:
    """Of the tracks that took a face at time t, only the k best views keep their pixels:
    memory stays bounded on long tracks."""
    for tr in tracks:
        if not (tr.times and tr.times[-1] == t):
            continue
        best = sorted(tr.items, key=lambda v: -v.face.quality)[:k]
        for v in tr.items:
            if v.work is not None and all(v is not b for b in best):
                v.work = None


def to_embed(tr: Track[View], s: CarriedTrack, fusion: FusionPolicy) -> list[View]:
    """The views of a track worth embedding now, best first: its k best for a first decision,
    after that one clearly better view, within the passing's budget; none once it matched."""
    ranked = sorted((v for v in tr.items if v.work is not None), key=lambda v: -v.face.quality)
    budget = fusion.max_embedded - s.embedded
    if s.matched or budget <= 0 or not ranked:
        return []
    if not fusion.enabled:
        return ranked[:1]
    if s.decisions == 0:
        return ranked[: min(fusion.best_k, budget)]
    return ranked[:1] if ranked[0].face.quality >= s.best_q * fusion.better_view else []
