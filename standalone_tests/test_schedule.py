"""Backup slots spread over the period (engine.schedule)."""

from collections import Counter
from datetime import datetime, time, timedelta

import pytest

from engine import schedule

HOUR = 3600
DAY = 24 * HOUR
KEYS = ["client%04d.example.com" % i for i in range(1000)]


def at(text):
    return datetime.fromisoformat(text)


def test_phase_is_stable_across_runs_and_machines():
    """The first 8 bytes of sha256(b"acme.example.com"), big-endian, modulo the period."""
    assert schedule.phase("acme.example.com", DAY) == 3614938930043903571 % DAY == 18771


@pytest.mark.parametrize("period", [1, 7, 300, 6 * HOUR, DAY, 7 * DAY])
def test_phase_is_in_the_period(period):
    phases = [schedule.phase(key, period) for key in KEYS]
    assert all(0 <= p < period for p in phases)


def test_a_period_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        schedule.phase("acme", 0)


def test_1000_daily_instances_are_spread_over_the_day():
    """41.7 an hour on average; these keys give 30 to 61.  A binomial hour count
    (n=1000, p=1/24, sd 6.3) reaches 2x the average once in ~10**10 hours."""
    per_hour = Counter(schedule.phase(key, DAY) // HOUR for key in KEYS)
    average = len(KEYS) / 24
    assert len(per_hour) == 24
    assert max(per_hour.values()) <= 2 * average
    assert min(per_hour.values()) >= average / 2


def test_slot_start():
    assert schedule.slot_start(at("2027-01-01T00:30"), DAY, HOUR) == at("2026-12-31T01:00")
    assert schedule.slot_start(at("2027-01-01T01:00"), DAY, HOUR) == at("2027-01-01T01:00")
    assert schedule.slot_start(at("2027-01-01T13:59:59.5"), 6 * HOUR, HOUR) == at(
        "2027-01-01T13:00")


def simulate(periods, start, days, tick=timedelta(minutes=5)):
    """A cron ticking every ``tick`` from ``start`` for ``days`` days, backing up every
    due instance; never backed up at the start.  The stamps taken, per key."""
    taken = {key: [] for key in periods}
    now, end = start, start + timedelta(days=days)
    while now < end:
        for key, period in periods.items():
            last = taken[key][-1] if taken[key] else None
            if schedule.is_due(last, now, period, key):
                taken[key].append(now)
        now += tick
    return taken


def test_6_12_24_hour_periods_give_4_2_1_backups_a_day():
    """Day 0 is warm-up (everyone is due at once at its first tick).  On each later
    day every instance gets exactly its count: a slot starting in a day's last
    5 minutes is taken at the next midnight tick, so a day takes the slots of a
    24 h window shifted by under 5 minutes, which holds as many."""
    periods = {key: (6 * HOUR, 12 * HOUR, DAY)[i % 3] for i, key in enumerate(KEYS[:300])}
    start = at("2027-03-01")
    taken = simulate(periods, start, days=4)
    for key, period in periods.items():
        per_day = Counter((stamp - start).days for stamp in taken[key])
        assert taken[key][0] == start
        assert [per_day[d] for d in (1, 2, 3)] == [DAY // period] * 3, key
        slots = [schedule.slot_start(s, period, schedule.phase(key, period)) for s in taken[key]]
        assert len(set(slots)) == len(slots)  # never twice in a slot
    late_slots = [key for key, stamps in taken.items()
                  if any(stamp.time() == time(0) for stamp in stamps[1:])]
    assert late_slots  # the case of the docstring is met (6 of these 300 keys)


def test_backups_are_taken_at_the_instances_phase():
    key = KEYS[0]
    phase = timedelta(seconds=schedule.phase(key, DAY))
    taken = simulate({key: DAY}, at("2027-03-01"), days=3, tick=timedelta(seconds=1))
    assert taken[key] == [at("2027-03-01"), at("2027-03-01") + phase,
                          at("2027-03-02") + phase, at("2027-03-03") + phase]


def test_catch_up_after_downtime_is_due_at_once_and_once():
    key = "acme.example.com"  # daily slot at 05:12:51
    now = at("2027-03-10T14:00")
    last = at("2027-03-07T05:13")  # three days of downtime since
    assert schedule.is_due(last, now, DAY, key)
    assert schedule.next_due(last, now, DAY, key) == now
    assert not schedule.is_due(now, now + timedelta(minutes=5), DAY, key)
    assert schedule.next_due(now, now, DAY, key) == at("2027-03-11T05:12:51")


def test_a_late_backup_does_not_drift_the_next_one():
    key = "acme.example.com"
    late = at("2027-03-10T23:00")  # the slot opened at 05:12:51
    assert not schedule.is_due(late, at("2027-03-11T05:12:50"), DAY, key)
    assert schedule.is_due(late, at("2027-03-11T05:12:51"), DAY, key)


def test_never_backed_up_is_due():
    assert schedule.is_due(None, at("2027-03-10T14:00"), DAY, "acme.example.com")
    assert schedule.next_due(None, at("2027-03-10T14:00"), DAY, "acme") == at("2027-03-10T14:00")


def test_a_backup_stamped_in_the_future_counts():
    """A skewed clock must not make the instance due at every tick."""
    now = at("2027-03-10T14:00")
    assert not schedule.is_due(now + timedelta(hours=3), now, DAY, "acme.example.com")


def test_pick_takes_the_most_overdue_first_up_to_the_limit():
    candidates = [("b", at("2027-03-09T10:00")), ("c", None), ("a", at("2027-03-08T10:00")),
                  ("e", at("2027-03-09T10:00")), ("d", None)]
    assert schedule.pick(candidates, 10) == ["c", "d", "a", "b", "e"]
    assert schedule.pick(candidates, 3) == ["c", "d", "a"]
    assert schedule.pick(candidates, 0) == []
    assert schedule.pick([], 5) == []


def test_pick_refuses_a_negative_limit():
    with pytest.raises(ValueError, match="negative"):
        schedule.pick([("a", None)], -1)
