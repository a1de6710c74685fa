"""DET curve (FNIR against FPIR, log-log) as a PNG, with matplotlib's Agg backend (no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_det(
    path: Path,
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    points: Sequence[tuple[str, float, float]] = (),
    title: str = "Open-set 1:N identification",
) -> Path:
    """curves: (label, fpir, fnir); points: (label, fpir, fnir) operating points to mark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    floor = 1e-4
    for label, fpir, fnir in curves:
        x = np.clip(np.asarray(fpir, float), floor, 1.0)
        y = np.clip(np.asarray(fnir, float), floor, 1.0)
        ax.step(x, y, where="post", label=label)
    for label, fpir, fnir in points:
        ax.plot([max(fpir, floor)], [max(fnir, floor)], "o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(floor, 1.0)
    ax.set_xlabel("FPIR (non-mated probes alerting)")
    ax.set_ylabel("FNIR (mated probes missed at rank 1)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
