"""Which backups to keep: grandfather-father-son retention.

:func:`keep` returns the ids a :class:`Policy` keeps, :func:`prune` the rest.
An item is kept when any of these rules keeps it (the rules overlap: one
backup may be the daily, the weekly and the monthly one at once):

* **Tiers.**  For ``daily``, ``weekly`` and ``monthly``, the newest backup
  of each of the ``n`` most recent buckets that *have* a verified backup.
  Buckets are UTC calendar days, ISO weeks (``isocalendar()``: the week of
  2026-12-28 to 2027-01-03 is one week, 2026-W53, not two half weeks split
  by New Year) and calendar months.  Counting buckets that have a backup,
  not calendar buckets back from now (as ``restic forget`` and ``borg
  prune`` do), means an outage of the backup cron does not make old
  backups expire: after 20 days without a backup the last 7 dailies are
  still there.  The current bucket counts, so ``daily=7`` keeps today and
  the 6 days before.  Within a bucket the newest stamp wins, the higher id
  on a tie (the one recorded last).  ``0`` disables a tier.
* **Recent.**  Every item younger than ``recent_hours``, verified or not: a
  plan that backs up every 6 hours keeps all of a day's backups, and a
  backup whose verification is still pending or under investigation is
  not deleted under the operator's feet.
* **The newest verified backup**, whatever the policy (even all zeros):
  pruning reclaims space, it must never leave an instance without a
  usable backup.
* **Items in the future** (clock skew between the backup host and the
  caller) are kept, and take no part in the tiers until their time comes,
  so that a skewed stamp cannot push a genuine backup out of its tier.

Only verified items count for the tiers and for "newest": an unverified
backup is not known to restore, so it must not take the place of one that
is.  Unverified items older than ``recent_hours`` are pruned.  One
exception: when no item is verified at all, nothing is pruned.  Then every
verification failed, which points at the verification or the storage
rather than at each backup, and an unverified backup may still be the only
thing a restore can start from; the growth this causes is visible and
short-lived next to losing the last copy.

Stamps are naive UTC datetimes (aware ones are refused: mixing them would
put backups in the wrong day).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Policy:
    """How many daily, weekly and monthly buckets to keep (0 disables a tier),
    and the age in hours under which every backup is kept."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    recent_hours: int = 24

    def __post_init__(self):
        """Refuse negative counts: they have no meaning, and silently reading them
        as 0 would delete backups an operator meant to keep."""
        for name in ("daily", "weekly", "monthly", "recent_hours"):
            if getattr(self, name) < 0:
                raise ValueError("Retention %s must not be negative." % name)


@dataclass(frozen=True)
class Item:
    """A backup as retention sees it: its id, its stamp (naive UTC) and whether
    it was verified."""

    id: int
    stamp: datetime
    verified: bool = True


def _day(stamp):
    return stamp.date()


def _iso_week(stamp):
    return stamp.isocalendar()[:2]


def _month(stamp):
    return stamp.year, stamp.month


#: Each tier: the Policy field giving its count, and its bucket of a stamp.
TIERS = (("daily", _day), ("weekly", _iso_week), ("monthly", _month))


def _check_naive(stamp):
    if stamp.tzinfo is not None:
        raise ValueError("Retention works on naive UTC stamps, not %s." % stamp)


def _newest_per_bucket(newest_first, bucket, count):
    """Ids of the first item of each of the first ``count`` buckets met.

    ``newest_first`` is sorted newest first, so buckets are met from the
    most recent back, and the first item met in a bucket is its newest.
    """
    kept, seen = set(), set()
    for item in newest_first:
        if len(seen) >= count:
            break
        key = bucket(item.stamp)
        if key not in seen:
            seen.add(key)
            kept.add(item.id)
    return kept


def _newest_first(items):
    return sorted(items, key=lambda item: (item.stamp, item.id), reverse=True)


def keep(items, policy, now):
    """The set of ids of ``items`` that ``policy`` keeps at ``now`` (rules: module docstring)."""
    items = list(items)
    _check_naive(now)
    for item in items:
        _check_naive(item.stamp)
    if not any(item.verified for item in items):
        return {item.id for item in items}
    young_after = now - timedelta(hours=policy.recent_hours)  # <= now: the future is young
    kept = {item.id for item in items if item.stamp > young_after}
    verified = _newest_first(item for item in items if item.verified and item.stamp <= now)
    if verified:
        kept.add(verified[0].id)
    for name, bucket in TIERS:
        kept |= _newest_per_bucket(verified, bucket, getattr(policy, name))
    return kept


def prune(items, policy, now):
    """The ids of ``items`` that ``policy`` does not keep at ``now``, oldest first
    (so that an interrupted prune has removed the least valuable ones)."""
    items = list(items)
    kept = keep(items, policy, now)
    return [item.id for item in reversed(_newest_first(items)) if item.id not in kept]
