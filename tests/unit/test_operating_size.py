"""`lfr eval --operating-size N`: the operating points at the thresholds the product would apply
to a list of N subjects with the gallery's mix (issue 23), TPIR on the eval's own probes."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.evaluation.cli import _at_operating_size
from chalicelib.evaluation.openset import ProbeScores, scaled_mix
from chalicelib.matching.calibration import load_stats, operating_point
from chalicelib.settings import Settings
from chalicelib.vision.factory import embedding_id


def test_a_mix_scales_to_exactly_n_in_the_same_shares() -> None:
    assert scaled_mix({1: 503}, 10_000) == {1: 10_000}
    assert scaled_mix({1: 186, 2: 86, 3: 233}, 10_000) == {1: 3683, 2: 1703, 3: 4614}
    assert sum(scaled_mix({1: 1, 2: 1, 3: 1}, 10).values()) == 10
    assert scaled_mix({}, 5) == {1: 5}
    with pytest.raises(ValueError):
        scaled_mix({1: 3}, 0)


def test_the_operating_points_are_those_of_a_list_of_n() -> None:
    stats = load_stats(embedding_id(Settings()))
    mated = np.array([0.45, 0.52, 0.56, 0.59, 0.70])
    scores = ProbeScores(mated, np.ones(5, bool), np.array([0.30, 0.40]))
    report: dict = {"calibrated": {"template_sizes": {1: 400, 3: 100}}}
    _at_operating_size(report, stats, scores, 10_000)
    assert report["operating_size"] == {"subjects": 10_000,
                                        "template_sizes": {1: 8000, 3: 2000}}
    for row in report["operating_points"]:
        pt = operating_point(stats, row["target_fpir"], {1: 8000, 3: 2000})
        assert row["threshold"] == pt.threshold
        # Stricter than the gallery's own 500 subjects would get.
        assert row["threshold"] > operating_point(stats, row["target_fpir"],
                                                  {1: 400, 3: 100}).threshold
        assert row["tpir"] == float((mated >= pt.threshold).mean())
