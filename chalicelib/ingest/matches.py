"""One 1:N decision per track on its fused embedding; per subject, the best-scoring track becomes
the batch's Match, with the crop an officer sees. A track that matches nobody leaves nothing
here: its embedding and crops are forgotten."""

from __future__ import annotations

import numpy as np

from chalicelib.ingest.embed import Plan
from chalicelib.ingest.outcome import BatchOutcome
from chalicelib.matching.decision import Match, decide
from chalicelib.matching.index import Candidate, ExactIndex


def decide_plans(plans: list[Plan], fused: np.ndarray, index: ExactIndex, threshold: float,
                 out: BatchOutcome) -> list[Match]:
    """fused[i]: plans[i]'s embedding. Records each decision in the track's summary (faces
    embedded, best quality, the subject once matched). Best match first."""
    for p in plans:
        s = p.summary
        s.embedded += len(p.views)
        s.decisions += 1
        s.best_q = max(s.best_q, max(v.face.quality for v in p.views))
    out.decisions += len(plans)
    results: dict[str, Match] = {}
    for p, candidates in zip(plans, index.search(fused), strict=True):
        top = decide(candidates, threshold)
        if top is None:
            continue
        p.summary.subject_id = top.subject_id
        p.summary.sustained_t = max(v.captured_at for v in p.track.items).timestamp()
        held = results.get(top.subject_id)
        if held is None or top.score > held.score:
            results[top.subject_id] = _match(p, top)
    return sorted(results.values(), key=lambda m: -m.score)


def _match(p: Plan, top: Candidate) -> Match:
    view = p.views[0]
    b = view.face.detection.box
    return Match(top.subject_id, top.score, view.frame_index, view.captured_at,
                 (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                 context_crop(view.pixels(), view.local().box), len(p.track.items))


def context_crop(image: np.ndarray, box: np.ndarray, margin: float = 0.6) -> np.ndarray:
    """The face box grown by `margin` on each side, clipped to the frame: what an officer sees."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    h_img, w_img = image.shape[:2]
    xa, ya = max(0, int(x1 - margin * w)), max(0, int(y1 - margin * h))
    xb, yb = min(w_img, int(x2 + margin * w)), min(h_img, int(y2 + margin * h))
    return image[ya:yb, xa:xb].copy()
