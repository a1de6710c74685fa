"""Exact 1:N cosine search over a watchlist held in memory (numpy).

A watchlist of 20,000 128-d templates is 10 MB and one probe is a single matrix-vector product
(~1 ms), so exact search beats any approximate index at the watchlist sizes police use and never
misses the true nearest subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    score: float


class ExactIndex:
    def __init__(self, subject_ids: list[str], templates: np.ndarray, model_id: str) -> None:
        templates = np.asarray(templates, dtype=np.float32)
        if templates.ndim != 2 or templates.shape[0] != len(subject_ids):
            raise ValueError(f"{len(subject_ids)} ids but templates of shape {templates.shape}")
        norms = np.linalg.norm(templates, axis=1, keepdims=True)
        if len(subject_ids) and not np.all(norms > 0):
            raise ValueError("a template has zero norm")
        self.subject_ids = list(subject_ids)
        self.templates = templates / np.where(norms > 0, norms, 1.0)
        self.model_id = model_id

    def __len__(self) -> int:
        return len(self.subject_ids)

    def search(self, probes: np.ndarray, k: int = 1) -> list[list[Candidate]]:
        """Top-k subjects for each probe (rows L2-normalised), best first."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if len(self) == 0 or probes.shape[0] == 0:
            return [[] for _ in range(probes.shape[0])]
        scores = probes @ self.templates.T
        k = min(k, len(self))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, idx in zip(scores, top, strict=True):
            order = idx[np.argsort(-row[idx])]
            out.append([Candidate(self.subject_ids[j], float(row[j])) for j in order])
        return out
