"""Grandfather-father-son retention (engine.retention).

The expected sets are written out as dates, worked out by hand from the
calendar, not by a second implementation of the rules.
"""

from datetime import date, datetime, timedelta, timezone

import pytest

from engine import retention
from engine.retention import Item, Policy

#: The last day of the 400-day series (a Wednesday, ISO week 2027-W06).
LAST_DAY = date(2027, 2, 10)
DAYS = 400

#: Under the default policy, on LAST_DAY: what each tier keeps.
DAILY = ["2027-02-04", "2027-02-05", "2027-02-06", "2027-02-07", "2027-02-08",
         "2027-02-09", "2027-02-10"]
#: The newest backup of this week (Wednesday) and the Sundays of the 3 weeks before.
WEEKLY = ["2027-01-24", "2027-01-31", "2027-02-07", "2027-02-10"]
#: The newest backup of this month and the last days of the 11 months before.
MONTHLY = ["2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31",
           "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31",
           "2027-01-31", "2027-02-10"]
EXPECTED_DAYS = sorted(set(DAILY + WEEKLY + MONTHLY))


def at(text):
    return datetime.fromisoformat(text)


def daily_series(hours=(2,), last_day=LAST_DAY, days=DAYS):
    """One backup at each of ``hours`` on each of ``days`` days ending ``last_day``,
    ids in time order."""
    first = last_day - timedelta(days=days - 1)
    stamps = [datetime.combine(first + timedelta(days=d), datetime.min.time())
              + timedelta(hours=h) for d in range(days) for h in hours]
    return [Item(i, stamp) for i, stamp in enumerate(stamps)]


def kept_stamps(items, policy, now):
    kept = retention.keep(items, policy, now)
    return sorted(item.stamp for item in items if item.id in kept)


def stamps_at(days, hour):
    return [at(day) + timedelta(hours=hour) for day in days]


def test_expected_days_are_the_union_of_the_tiers():
    assert len(EXPECTED_DAYS) == 19  # 7 dailies, 2 more weeklies, 10 more monthlies


def test_one_backup_a_day_for_400_days():
    items = daily_series()
    now = at("2027-02-10T12:00")
    assert kept_stamps(items, Policy(), now) == stamps_at(EXPECTED_DAYS, 2)


def test_four_backups_a_day_for_400_days():
    """Each day's newest backup is the 18:00 one, today's the 12:00 one; the last
    24 hours keep yesterday's 18:00 and today's three."""
    items = daily_series(hours=(0, 6, 12, 18), last_day=LAST_DAY - timedelta(days=1))
    items += [Item(len(items) + i, at("2027-02-10") + timedelta(hours=h))
              for i, h in enumerate((0, 6, 12))]
    now = at("2027-02-10T13:00")
    older = stamps_at([day for day in EXPECTED_DAYS if day != "2027-02-10"], 18)
    today = [at("2027-02-10T00:00"), at("2027-02-10T06:00"), at("2027-02-10T12:00")]
    assert kept_stamps(items, Policy(), now) == older + today


def test_prune_is_the_complement_oldest_first():
    items = daily_series()
    now = at("2027-02-10T12:00")
    pruned = retention.prune(items, Policy(), now)
    kept = retention.keep(items, Policy(), now)
    assert set(pruned) == {item.id for item in items} - kept
    assert pruned == sorted(pruned)  # ids are in time order
    assert len(pruned) == DAYS - len(EXPECTED_DAYS)


@pytest.mark.parametrize("hours", [(2,), (0, 6, 12, 18)])
def test_pruning_every_day_for_400_days_is_stable(hours):
    """Back up, then prune, day after day: never more than the tiers plus one day of
    backups, and the end state is the one of the 400-day series pruned once."""
    policy = Policy()
    bound = policy.daily + policy.weekly + policy.monthly + len(hours)
    series = daily_series(hours=hours)
    stored = []
    for item in series:
        stored.append(item)
        now = item.stamp + timedelta(minutes=5)
        doomed = set(retention.prune(stored, policy, now))
        stored = [kept for kept in stored if kept.id not in doomed]
        assert len(stored) <= bound
    now = series[-1].stamp + timedelta(minutes=5)
    assert stored == [item for item in series if item.id in retention.keep(series, policy, now)]
    assert sorted({item.stamp.date().isoformat() for item in stored}) == EXPECTED_DAYS


def test_a_gap_without_backups_keeps_the_older_dailies():
    """20 days without a backup (the cron was down), pruned every day meanwhile:
    the last 7 days that have a backup are still kept."""
    items = daily_series(days=60, last_day=date(2027, 1, 20))
    expected = kept_stamps(items, Policy(), at("2027-01-20T12:00"))
    assert stamps_at(["2027-01-14", "2027-01-15", "2027-01-16", "2027-01-17", "2027-01-18",
                      "2027-01-19", "2027-01-20"], 2) == expected[-7:]
    for day in range(1, 21):
        now = at("2027-01-20T12:00") + timedelta(days=day)
        assert kept_stamps(items, Policy(), now) == expected


def test_the_newest_verified_backup_is_kept_whatever_the_policy():
    items = [Item(1, at("2027-01-01T02:00")), Item(2, at("2027-01-02T02:00")),
             Item(3, at("2027-01-03T02:00"), verified=False)]
    zeros = Policy(daily=0, weekly=0, monthly=0, recent_hours=0)
    assert retention.keep(items, zeros, at("2027-02-01")) == {2}
    assert retention.prune(items, zeros, at("2027-02-01")) == [1, 3]


def test_unverified_backups_do_not_count_for_the_tiers():
    """Yesterday's only backup failed verification: it is pruned, and the daily
    tier reaches one day further back instead."""
    items = daily_series(days=10, last_day=date(2027, 1, 10))
    items[8] = Item(8, items[8].stamp, verified=False)  # 2027-01-09
    policy = Policy(daily=3, weekly=0, monthly=0)
    kept = kept_stamps(items, policy, at("2027-01-10T12:00"))
    assert kept == stamps_at(["2027-01-07", "2027-01-08", "2027-01-10"], 2)


def test_unverified_backups_are_kept_while_recent():
    items = [Item(1, at("2027-01-10T02:00")), Item(2, at("2027-01-10T08:00"), verified=False)]
    policy = Policy(daily=1, weekly=0, monthly=0, recent_hours=6)
    assert retention.keep(items, policy, at("2027-01-10T12:00")) == {1, 2}
    assert retention.keep(items, policy, at("2027-01-10T14:00")) == {1}


def test_nothing_is_pruned_when_no_backup_is_verified():
    items = [Item(i, at("2026-01-01") + timedelta(days=i), verified=False) for i in range(50)]
    assert retention.prune(items, Policy(), at("2027-01-01")) == []


def test_backups_in_the_future_are_kept_and_take_no_tier_slot():
    """A skewed stamp of tomorrow is kept, and today's genuine backup stays the daily."""
    items = [Item(1, at("2027-01-09T02:00")), Item(2, at("2027-01-10T02:00")),
             Item(3, at("2027-01-11T02:00"))]
    policy = Policy(daily=1, weekly=0, monthly=0, recent_hours=0)
    assert retention.keep(items, policy, at("2027-01-10T12:00")) == {2, 3}


def test_month_boundary():
    items = [Item(1, at("2027-01-31T00:00")), Item(2, at("2027-01-31T23:59:59")),
             Item(3, at("2027-02-01T00:00")), Item(4, at("2027-02-01T00:01"))]
    policy = Policy(daily=0, weekly=0, monthly=2, recent_hours=0)
    assert retention.keep(items, policy, at("2027-02-02")) == {2, 4}


def test_iso_weeks_across_the_new_year():
    """2026-12-28 (Monday) to 2027-01-03 (Sunday) is one ISO week, 2026-W53."""
    days = ["2026-12-27", "2026-12-28", "2026-12-31", "2027-01-01", "2027-01-03",
            "2027-01-04"]
    items = [Item(i, stamp) for i, stamp in enumerate(stamps_at(days, 2))]
    weekly = Policy(daily=0, weekly=3, monthly=0, recent_hours=0)
    kept = kept_stamps(items, weekly, at("2027-01-04T12:00"))
    assert kept == stamps_at(["2026-12-27", "2027-01-03", "2027-01-04"], 2)
    monthly = Policy(daily=0, weekly=0, monthly=2, recent_hours=0)
    kept = kept_stamps(items, monthly, at("2027-01-04T12:00"))
    assert kept == stamps_at(["2026-12-31", "2027-01-04"], 2)


def test_the_later_id_wins_a_tie_in_a_bucket():
    items = [Item(7, at("2027-01-10T02:00")), Item(5, at("2027-01-10T02:00"))]
    policy = Policy(daily=1, weekly=0, monthly=0, recent_hours=0)
    assert retention.keep(items, policy, at("2027-01-11")) == {7}


def test_disabled_tiers_keep_nothing_older():
    items = daily_series(days=40, last_day=date(2027, 1, 20))
    policy = Policy(daily=0, weekly=2, monthly=0, recent_hours=0)
    kept = kept_stamps(items, policy, at("2027-01-20T12:00"))
    assert kept == stamps_at(["2027-01-17", "2027-01-20"], 2)


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="weekly"):
        Policy(weekly=-1)


def test_aware_stamps_are_refused():
    aware = datetime(2027, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="naive"):
        retention.keep([Item(1, at("2027-01-01"))], Policy(), aware)
    with pytest.raises(ValueError, match="naive"):
        retention.keep([Item(1, aware)], Policy(), at("2027-01-02"))
