"""Failures the operation runner retries by itself.

A :class:`RetryableError` is expected to go away without anyone doing
anything: a server not reachable for a moment, a database still in use by a
session that ends soon.  The runner queues the operation again with a
growing delay (see ``models/saas_operation.py``); any other error needs an
operator.  Engine modules raise subclasses that are also their own error
type (e.g. ``pg.BusyError`` is a ``pg.PgError``), so callers that only know
the module's error keep working.
"""


class RetryableError(Exception):
    """A failure that is expected to go away by itself: retry later."""
