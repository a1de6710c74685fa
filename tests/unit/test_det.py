"""The DET plot reads whole (issue 10, item 6d): its title lines, one of them the full embedding
space id, lie inside the figure as rendered, and nothing of them is cut."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from chalicelib.evaluation.det import det_figure, plot_det  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from chalicelib.vision.factory import embedding_id  # noqa: E402

CURVE = [("enroll 1, gallery 340", np.array([1e-3, 1e-2, 0.1, 1.0]),
          np.array([0.2, 0.05, 0.02, 0.01]))]
POINT = [("calibrated, target 0.001", 1e-3, 0.04)]


def _letters(text: str) -> str:
    return "".join(text.split())


def _assert_reads_whole(fig, texts: dict[str, str]) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    artists = {"title": fig.get_suptitle(), "subtitle": fig.axes[0].get_title()}
    shown = {"title": fig._suptitle, "subtitle": fig.axes[0].title}
    for name, full in texts.items():
        assert _letters(artists[name]) == _letters(full), name  # wrapped, never cut
        box = shown[name].get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height and box.y0 >= 0, \
            (name, box.bounds, (width, height))


def test_the_embedding_space_id_fits_the_figure() -> None:
    space = embedding_id(Settings())
    assert len(space) > 40  # the id that ran off both edges
    texts = {"title": "Open-set 1:N identification, seed 0",
             "subtitle": f"embedding space {space}"}
    fig = det_figure(CURVE, POINT, texts["title"], texts["subtitle"])
    try:
        _assert_reads_whole(fig, texts)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("title", [
    # The old title: the id and the protocol on one 12 pt line.
    "sface-2021dec-int8bq-fb143eea0783-c0a2b928c-p5db072: open-set 1:N, seed 0",
    "x" * 150,  # no place to break at all
])
def test_any_title_is_wrapped_until_it_fits(title: str) -> None:
    texts = {"title": title, "subtitle": "embedding space " + "-".join(["abcdef0123"] * 12)}
    fig = det_figure(CURVE, POINT, texts["title"], texts["subtitle"])
    try:
        _assert_reads_whole(fig, texts)
    finally:
        plt.close(fig)


def test_plot_det_writes_the_figure(tmp_path) -> None:
    out = plot_det(tmp_path / "det" / "curve.png", CURVE, POINT, "t", "s")
    image = plt.imread(out)
    assert image.shape[:2] == (600, 720)
