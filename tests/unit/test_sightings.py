"""The pure core of one alert per passing (alerts/sightings.py)."""

from __future__ import annotations

from chalicelib.alerts.sightings import MAX_PASSINGS, Passing, extended, place

W = 60.0


def test_first_match_alerts_and_later_batches_of_the_passing_continue_it() -> None:
    raise_it, ps = place([], "a1", 1000.0, W)
    assert raise_it and ps == [Passing("a1", 1000.0, 1000.0)]
    raise_it, ps = place(ps, "a2", 1030.0, W)
    assert not raise_it and ps == [Passing("a1", 1000.0, 1030.0)]
    raise_it, ps = place(ps, "a3", 1085.0, W)  # within the window of the span's end
    assert not raise_it and ps[0].last == 1085.0


def test_a_retry_of_the_claiming_batch_raises_the_same_alert_again() -> None:
    _, ps = place([], "a1", 1000.0, W)
    _, ps = place(ps, "a2", 1010.0, W)
    raise_it, again = place(ps, "a1", 1000.0, W)
    assert raise_it and again == ps


def test_an_earlier_passing_processed_later_is_a_passing_of_its_own() -> None:
    _, ps = place([], "late", 2000.0, W)
    raise_it, ps = place(ps, "early", 1700.0, W)
    assert raise_it and {p.alert_id for p in ps} == {"late", "early"}
    # A batch seconds before the early passing's first face belongs to it (extends it back).
    raise_it, ps = place(ps, "early-2", 1690.0, W)
    assert not raise_it
    assert next(p for p in ps if p.alert_id == "early").first == 1690.0
    # One after a quiet window is a third passing.
    raise_it, ps = place(ps, "third", 2100.0, W)
    assert raise_it and len(ps) == 3


def test_extending_reaches_the_nearest_passing_only() -> None:
    ps = [Passing("a", 1000.0, 1010.0), Passing("b", 1500.0, 1510.0)]
    out = extended(ps, 1525.0, W)
    assert out == [Passing("a", 1000.0, 1010.0), Passing("b", 1500.0, 1525.0)]
    assert extended(ps, 3000.0, W) == ps  # belongs to none: nothing changes


def test_passings_are_bounded_to_a_day_and_a_count() -> None:
    ps: list[Passing] = []
    for n in range(MAX_PASSINGS + 5):
        _, ps = place(ps, f"a{n}", 1000.0 + 600.0 * n, W)
    assert len(ps) == MAX_PASSINGS and ps[-1].alert_id == f"a{MAX_PASSINGS + 4}"
    _, ps = place(ps, "next-day", ps[-1].last + 2 * 86400.0, W)
    assert [p.alert_id for p in ps] == ["next-day"]
