"""Settings that would break the retention policy are refused when the settings are built."""

from __future__ import annotations

import pytest

from chalicelib.settings import Settings


def test_the_unbound_watchlist_limit_stays_inside_the_policy() -> None:
    assert Settings.from_env({}).watchlist_unbound_hours == 12
    assert Settings.from_env({"LFR_WATCHLIST_UNBOUND_HOURS": "23"}).watchlist_unbound_hours == 23
    # 24 h plus up to one 15 min sweep interval would pass the policy's 24 h.
    for hours in ("24", "48", "0"):
        with pytest.raises(ValueError, match="LFR_WATCHLIST_UNBOUND_HOURS"):
            Settings.from_env({"LFR_WATCHLIST_UNBOUND_HOURS": hours})


def test_a_dead_lettered_batch_s_frames_are_held_less_than_the_bucket_s_day() -> None:
    assert Settings.from_env({}).dead_letter_frames_hours == 6
    for hours in ("0", "24", "48"):
        with pytest.raises(ValueError, match="LFR_DEAD_LETTER_FRAMES_HOURS"):
            Settings.from_env({"LFR_DEAD_LETTER_FRAMES_HOURS": hours})
