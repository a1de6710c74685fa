"""`lfr calibrate-mated`: measure the expected-TPIR model (matching/expected_tpir.py) on
background faces, and check it on identities it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chalicelib.matching.expected_tpir import (
    SIZES,
    MatedModel,
    agreement,
)

CHECK_THRESHOLDS = (0.45, 0.50, 0.55, 0.5703, 0.60)  # 0.5703: 1e-5 at a 10,000-subject list


def check_model(model: MatedModel, embs: list[np.ndarray], labels: list[str],
                seed: int = 1) -> list[dict]:
    """Predicted against measured TPIR on other identities: each identity with more than K
    photos gets one K-image template from a random draw; its other photos are the probes
    (each identity weighing the same)."""
    e = np.stack(embs).astype(np.float64)
    lab = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = []
    by_key: dict[str, list[tuple[np.ndarray, float]]] = {}
    for k in SIZES:
        for ident in np.unique(lab):
            idx = rng.permutation(np.flatnonzero(lab == ident))
            if len(idx) < k + 1:
                continue
            refs = e[idx[:k]]
            t = refs.mean(axis=0)
            t /= np.linalg.norm(t)
            key = model.curve_key(k, agreement(refs))
            by_key.setdefault(key, []).append((e[idx[k:]] @ t, 1.0 / (len(idx) - k)))
    for key, got in sorted(by_key.items()):
        scores = np.concatenate([s for s, _ in got])
        weights = np.concatenate([np.full(len(s), w) for s, w in got])
        for thr in CHECK_THRESHOLDS:
            measured = float(np.average(scores >= thr, weights=weights))
            predicted = float(np.interp(thr, model.grid, model.curves[key]))
            rows.append({"curve": key, "threshold": thr, "identities": len(got),
                         "predicted": round(predicted, 4), "measured": round(measured, 4)})
    return rows


def write_model(out: Path, model: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model, indent=0) + "\n")
