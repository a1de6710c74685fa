"""The expected-TPIR model (matching/expected_tpir.py): what more or better references buy."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.matching.calibration import STATS_DIR
from chalicelib.matching.expected_tpir import (
    MatedModel,
    agreement,
    fit_mated_model,
    load_mated_model,
)
from chalicelib.settings import Settings
from chalicelib.vision.factory import embedding_id


def _people(n_ids: int, per_id: int, noise: float, seed: int = 0) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 32))
    rows = [c + noise * rng.normal(size=32) for c in centres for _ in range(per_id)]
    return np.asarray(rows), [i for i in range(n_ids) for _ in range(per_id)]


@pytest.fixture(scope="module")
def model() -> MatedModel:
    e, labels = _people(60, 6, 0.9)
    return MatedModel.from_dict(fit_mated_model(e, [str(x) for x in labels], model_id="t"))


def test_more_references_catch_more_and_a_higher_threshold_catches_less(model) -> None:
    for t in (0.4, 0.5, 0.6):
        assert model.expected_tpir(3, 0.9, t) >= model.expected_tpir(1, None, t)
    tp = [model.expected_tpir(1, None, t) for t in np.linspace(0.3, 0.8, 11)]
    assert all(a >= b for a, b in zip(tp, tp[1:], strict=False)) and tp[0] > tp[-1]


def test_references_that_disagree_or_whose_agreement_is_unknown_count_as_low(model) -> None:
    cut = model.agreement_cut[2]
    assert model.curve_key(2, cut - 0.01) == "2-low"
    assert model.curve_key(2, None) == "2-low"
    assert model.curve_key(2, cut) == "2-high"
    assert model.curve_key(7, cut) == "3-high"  # more than three counts as three
    assert model.curve_key(1, 0.99) == "1"


def test_agreement_is_the_mean_cosine_between_references() -> None:
    assert agreement(np.array([[1.0, 0.0]])) is None
    assert agreement(np.array([[1.0, 0.0], [0.0, 2.0]])) == 0.0
    assert agreement(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 / 3,
                                                                                     abs=1e-4)


def test_the_shipped_embedding_space_has_a_model() -> None:
    assert load_mated_model(STATS_DIR, embedding_id(Settings())) is not None
