"""The look-alike rule (ops/lookalikes.py), pure: which later matches are taken for the
look-alike an officer ruled out, and which alert as new."""

from __future__ import annotations

from chalicelib.ops.lookalikes import RuledOut, resembles, ruled_out

NOW = 1_800_000_000.0
RULED = [RuledOut("al-1", "s-1", 0.40, NOW + 3600)]


def test_a_score_near_or_below_the_ruled_out_one_is_the_lookalike() -> None:
    for score in (0.30, 0.40, 0.449):
        assert resembles(RULED, "s-1", score, NOW, margin=0.05) == "al-1"


def test_a_clearly_higher_score_another_subject_or_an_expired_entry_alert_anew() -> None:
    assert resembles(RULED, "s-1", 0.46, NOW, margin=0.05) is None  # may be the real s-1
    assert resembles(RULED, "s-2", 0.40, NOW, margin=0.05) is None
    assert resembles(RULED, "s-1", 0.40, NOW + 3600, margin=0.05) is None  # expired
    assert resembles([], "s-1", 0.40, NOW, margin=0.05) is None


def test_of_several_the_highest_score_that_covers_it() -> None:
    ruled = [*RULED, RuledOut("al-2", "s-1", 0.52, NOW + 60), RuledOut("al-3", "s-1", 0.35,
                                                                          NOW + 60)]
    assert resembles(ruled, "s-1", 0.55, NOW, margin=0.05) == "al-2"
    assert resembles(ruled, "s-1", 0.36, NOW, margin=0.05) == "al-2"


def test_entries_from_the_deployment_row() -> None:
    raw = {"al-1": {"subject_id": "s-1", "score": 0.4, "until": NOW + 3600}}
    assert ruled_out(raw) == RULED
    assert ruled_out(None) == []
