"""When each instance's backup is due: fixed slots, spread over the period.

1,000 instances on a daily schedule must not all dump at midnight: the
database server and the backup disk would take the whole load at once, and
the last dump would finish hours late.  So each instance gets a fixed
*phase* within its period, derived from a stable key (its database name) by
SHA-256: the same on every run and every machine, and spread uniformly
whatever the names look like (``client1``, ``client2``… do not cluster).

Time is cut into *slots*: the period, aligned on the Unix epoch and shifted
by the phase (a daily instance with phase 03:17 has a slot starting at 03:17
UTC every day).  A backup is due when none was taken since the current slot
started.  Because slots are fixed, a late backup does not drift the next
ones: a backup taken at 09:00 because the server was down at 03:17 is still
followed by the next one at 03:17, and after any downtime an instance is due
at once, once (the slots it missed are not made up one by one).

A backup stamped at or after the slot start counts, even one stamped in the
future by a skewed clock: counting it as missing would make the instance due
at every cron tick.

:func:`pick` bounds how many due instances one cron tick queues, the most
overdue first, so that a catch-up after downtime is spread over several
ticks rather than started all at once.  Stamps are naive UTC datetimes.
"""

import hashlib
from datetime import datetime, timedelta

#: Slots are aligned on the Unix epoch (naive UTC), so they are the same for every caller.
EPOCH = datetime(1970, 1, 1)


def _check_period(period_seconds):
    if period_seconds <= 0:
        raise ValueError("A backup period must be positive, not %r." % period_seconds)


def phase(key, period_seconds):
    """The offset of ``key``'s slots in ``[0, period_seconds)``, in seconds.

    The first 8 bytes of the key's SHA-256: the modulo bias is below
    ``period / 2**64``, nothing next to the spread itself.
    """
    _check_period(period_seconds)
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % period_seconds


def slot_start(now, period_seconds, phase_seconds):
    """The start of the slot ``now`` is in: the last ``EPOCH + phase + k * period`` <= ``now``."""
    _check_period(period_seconds)
    into_slot = (now - EPOCH - timedelta(seconds=phase_seconds)) % timedelta(
        seconds=period_seconds)
    return now - into_slot


def _current_slot(now, period_seconds, key):
    return slot_start(now, period_seconds, phase(key, period_seconds))


def is_due(last_stamp, now, period_seconds, key):
    """Whether ``key`` needs a backup at ``now``: none yet, or none since its slot started."""
    return last_stamp is None or last_stamp < _current_slot(now, period_seconds, key)


def next_due(last_stamp, now, period_seconds, key):
    """When ``key``'s next backup is due: ``now`` if it is due, else its next slot start."""
    if is_due(last_stamp, now, period_seconds, key):
        return now
    return _current_slot(now, period_seconds, key) + timedelta(seconds=period_seconds)


def _overdue_order(candidate):
    """Never backed up first, then the oldest last backup; the key breaks ties, so
    the order does not depend on how the candidates were listed."""
    key, last_stamp = candidate
    return last_stamp is not None, last_stamp or EPOCH, key


def pick(candidates, limit):
    """The keys of at most ``limit`` of the due ``candidates`` (``(key, last_stamp or
    None)`` pairs) to back up now, the most overdue first."""
    if limit < 0:
        raise ValueError("The number of backups to pick must not be negative.")
    return [key for key, _last in sorted(candidates, key=_overdue_order)[:limit]]
