"""A batch's outcome (ingest/outcome.py): stage timings, counts safe to log."""

from __future__ import annotations

import pytest

from chalicelib.ingest.outcome import BatchOutcome


def test_a_stage_is_timed_also_when_it_raises() -> None:
    out = BatchOutcome()
    with out.timed("decode"):
        pass
    with pytest.raises(ValueError), out.timed("decode"):
        raise ValueError("a hostile frame")
    assert set(out.timings_ms) == {"decode"} and out.timings_ms["decode"] >= 0


def test_counts_hold_numbers_only() -> None:
    out = BatchOutcome(frames_total=3)
    out.frames_skipped["empty"] += 1
    counts = out.counts()
    assert counts["frames_total"] == 3 and counts["frames_skipped"] == {"empty": 1}
    assert counts["matches"] == 0 and "carry" not in counts and "timings_ms" not in counts
