"""DET curve (FNIR against FPIR, log-log) as a PNG, with matplotlib's Agg backend (no display).

A plot a force may publish must read whole: the title is a short line, the embedding space's id
(50+ characters) a smaller line under it, and each is wrapped until it fits inside the figure as
rendered, not by a guess at character widths.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MARGIN_PX = 4  # kept clear between a title line and the figure's edge


def _inside(fig: Any, text: Any, renderer: Any) -> bool:
    if not text.get_text():
        return True
    box = text.get_window_extent(renderer)
    return (box.x0 >= MARGIN_PX and box.x1 <= fig.bbox.width - MARGIN_PX
            and box.y1 <= fig.bbox.height - MARGIN_PX)


def _fit(fig: Any, texts: Sequence[tuple[Any, str]]) -> None:
    """Wrap each text (artist, full string) narrower until all lie inside the figure."""
    widths = {id(artist): len(raw) for artist, raw in texts}
    for _ in range(64):
        fig.canvas.draw()  # lays the figure out (constrained layout) and renders the texts
        renderer = fig.canvas.get_renderer()
        over = [(a, raw) for a, raw in texts if not _inside(fig, a, renderer)]
        if not over:
            return
        for artist, raw in over:
            width = max(8, int(widths[id(artist)] * 0.85))
            widths[id(artist)] = width
            # Ids break at their hyphens; a run without one is broken where it must be.
            artist.set_text(textwrap.fill(raw, width, break_on_hyphens=True))
    raise RuntimeError("DET plot title does not fit the figure")


def det_figure(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    points: Sequence[tuple[str, float, float]] = (),
    title: str = "Open-set 1:N identification",
    subtitle: str = "",
) -> Any:
    """The figure (caller closes it); `subtitle` is a smaller line, e.g. the embedding space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120, layout="constrained")
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
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    head = fig.suptitle(title, fontsize=11)
    sub = ax.set_title(subtitle, fontsize=8, color="0.3")
    _fit(fig, [(head, title), (sub, subtitle)])
    return fig


def plot_det(
    path: Path,
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    points: Sequence[tuple[str, float, float]] = (),
    title: str = "Open-set 1:N identification",
    subtitle: str = "",
) -> Path:
    """curves: (label, fpir, fnir); points: (label, fpir, fnir) operating points to mark."""
    import matplotlib.pyplot as plt

    fig = det_figure(curves, points, title, subtitle)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
