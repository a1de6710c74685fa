"""Figures the README repeats are held once (docs/figures.json) and quoted with the same values
wherever they appear (issue 22 item 13: the README gave the function plus layer as 220 MB after
the layer had grown to 250.1 of 262.1 MB)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURES = json.loads((REPO / "docs" / "figures.json").read_text())["figures"]


def _folded(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_quote_of_a_figure_says_its_value(name: str) -> None:
    fig = FIGURES[name]
    for path, quotes in fig["quoted"].items():
        text = _folded((REPO / path).read_text())
        for quote in quotes:
            want = _folded(quote.format(**fig["values"]))
            assert want in text, f"{path} does not say {want!r} ({name}, measured by {fig['by']})"


def test_the_lambda_sizes_add_up_and_fit() -> None:
    v = FIGURES["lambda_unzipped"]["values"]
    assert abs(v["layer_mb"] + v["function_mb"] - v["total_mb"]) <= 0.1  # each rounded
    assert v["total_mb"] <= v["limit_mb"]


def test_the_layer_build_records_what_it_measured(tmp_path: Path) -> None:
    from layers.build_layer import record_sizes

    figures = tmp_path / "figures.json"
    figures.write_text((REPO / "docs" / "figures.json").read_text())
    record_sizes(figures, 210_049_000, 43_000_000)
    v = json.loads(figures.read_text())["figures"]["lambda_unzipped"]["values"]
    assert v == {"layer_mb": 210.0, "function_mb": 43.0, "total_mb": 253.0, "limit_mb": 262.1}
