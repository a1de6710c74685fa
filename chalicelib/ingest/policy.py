"""How one camera's frames are turned into decisions: track fusion, key frames, the budget of
faces embedded per passing (settings.py gives the deployed values, ingest/decide.fusion_policy)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.vision.track import TrackerPolicy


@dataclass(frozen=True)
class FusionPolicy:
    enabled: bool = True  # False: every face of every frame decided on its own (the baseline)
    best_k: int = 2  # faces of a track embedded and fused for its first decision
    # Faces embedded per passing, all batches together; after the first decision a track is
    # embedded again only on a view whose quality is `better_view` times the best one so far.
    max_embedded: int = 4
    better_view: float = 1.25
    # Full-frame detection at most this far apart in capture time (new faces are found on
    # these); between them the detector looks only around tracks that still want a view.
    # 0: every frame.
    key_interval_s: float = 0.6
    # A region search costs about its area; past this share of the frame, detect it all.
    max_region_share: float = 0.5
    tracker: TrackerPolicy = TrackerPolicy()
