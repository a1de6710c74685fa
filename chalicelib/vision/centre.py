"""The background centre of the embedding space (pure numpy; derived numbers, no faces).

SFace embeddings of unrelated people share a common component: the mean of many people's
unit embeddings has length 0.32, not ~0, so part of every cosine score is that shared direction and
not identity. Subtracting the mean of a background population before L2-normalising (the
"centring" step of classic descriptor post-processing) spreads impostors apart and leaves the
same person close. Measured on faces/dev (`lfr calibrate --measure-centre`, mean of 3 seeds,
TPIR at FPIR 0.001/0.002/0.005 on the identities the centre was not measured on): 0.970 ->
0.977. No tuning parameter: the plain mean, one weight per background identity.

The centre is 128 numbers, the average over hundreds of people: it identifies no one. It is
part of the recognizer's definition (the embedding space's id carries its hash), so templates
enrolled under one centre are never compared with faces embedded under another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Beside the calibration statistics of the same model (matching/calibration.py's STATS_DIR).
STATS_DIR = Path(__file__).resolve().parents[1] / "matching" / "stats"

FORMAT = "lfr-embedding-centre/1"


def measure_centre(embeddings: np.ndarray, identities: Sequence[str]) -> np.ndarray:
    """Mean over identities of each identity's mean embedding (rows L2-normalised, uncentred):
    an identity with 500 photographs weighs the same as one with 2."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    if len(labels) != len(e) or len(e) == 0:
        raise ValueError("need one identity label per embedding row")
    sums = np.zeros((labels.max() + 1, e.shape[1]))
    np.add.at(sums, labels, e)
    return (sums / np.bincount(labels)[:, None]).mean(axis=0).astype(np.float32)


def centre_path(base_model_id: str) -> Path:
    return STATS_DIR / f"{base_model_id}.centre.json"


def centre_document(centre: np.ndarray, base_model_id: str, source: dict) -> dict:
    return {
        "format": FORMAT,
        "base_model_id": base_model_id,
        "centre": [round(float(x), 7) for x in np.asarray(centre).ravel()],
        "source": source,
    }


def centre_from_document(doc: dict, base_model_id: str, where: str = "centre") -> np.ndarray:
    if doc.get("format") != FORMAT:
        raise ValueError(f"{where}: not an embedding centre")
    if doc.get("base_model_id") != base_model_id:
        raise ValueError(f"{where} was measured for {doc.get('base_model_id')!r}, "
                         f"not {base_model_id!r}")
    return np.asarray(doc["centre"], dtype=np.float32)


def load_centre(base_model_id: str, path: str | Path | None = None) -> np.ndarray:
    p = Path(path) if path else centre_path(base_model_id)
    if not p.exists():
        raise FileNotFoundError(f"no embedding centre for {base_model_id!r} at {p}; run "
                                "`lfr calibrate --background DIR --measure-centre PATH` or set "
                                "LFR_EMBED_CENTRE=false")
    return centre_from_document(json.loads(p.read_text()), base_model_id, str(p))
