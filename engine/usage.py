"""What a client database uses: active internal users, database size, filestore size.

Plans limit users and storage, and the nightly limits check measures every
live instance.  Loading an Odoo registry per database to ask ``res.users``
would cost seconds and memory each; a read-only SQL count costs
milliseconds.  So users are counted with plain SQL on a connection that
cannot write (``default_transaction_read_only``) and cannot hang a worker
(``statement_timeout``), and sizes come from PostgreSQL's catalog and the
filestore on disk.

A suspended database refuses connections (``ALLOW_CONNECTIONS false``): its
sizes are still read, its user count is left unknown (``None``) rather than
reported as an error.  One database failing (missing, unreachable, not an
Odoo database) sets the ``error`` of its own :class:`Usage` only.
"""

import os
import shutil
from dataclasses import dataclass

import psycopg2

from . import filestore, pg

READ_ONLY_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=5000"

#: ``res_users.id`` of Odoo's superuser (``odoo.SUPERUSER_ID``).
SUPERUSER_ID = 1
#: Login of Odoo's superuser since Odoo 12 (``base.user_root``, shown as OdooBot).
SYSTEM_LOGIN = "__system__"


@dataclass
class Usage:
    """Measures of one database; ``None`` means not measured, ``error`` says why."""

    database: str
    users: int | None = None
    database_bytes: int | None = None
    filestore_bytes: int = 0
    error: str | None = None

    @property
    def storage_bytes(self):
        """Database plus filestore, what a plan's storage limit counts."""
        return (self.database_bytes or 0) + (self.filestore_bytes or 0)


def _reason(exc):
    """The first line of a psycopg2/engine error, for an operator's one-line error."""
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_read_only(params, database, timeout=5):
    """A connection to ``database`` that refuses writes and long statements.

    Autocommit: every statement is its own read-only transaction, so the
    connection never sits idle in a transaction holding a snapshot.  libpq
    counts ``connect_timeout`` in whole seconds.
    """
    params = dict(params)
    options = ("%s %s" % (params.pop("options", ""), READ_ONLY_OPTIONS)).strip()
    params.pop("connect_timeout", None)
    conn = psycopg2.connect(dbname=database, connect_timeout=max(1, int(timeout)),
                            options=options, **params)
    conn.set_session(readonly=True, autocommit=True)
    return conn


def _columns(cr, table):
    """Column names of ``table`` as found on the search path (empty when it does not exist)."""
    cr.execute("""SELECT attname FROM pg_attribute
                   WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped""",
               (table,))
    return {row[0] for row in cr.fetchall()}


def count_internal_users(conn):
    """Number of active internal users of the Odoo database behind ``conn``.

    What Odoo calls an internal user is a ``res_users`` row with ``share``
    false: Odoo stores ``share`` true for portal and public users, who are
    not billed seats.  Excluded as well:

    * inactive users (``active`` not true): archived, they cannot log in;
    * id 1, Odoo's ``SUPERUSER_ID`` (``base.user_root``, OdooBot): the
      system account, not a person;
    * login ``__system__``: the same account found by its login, in case a
      migrated database gave it another id.

    NULL ``share`` counts as internal and NULL ``active`` as inactive, as
    Odoo reads a NULL boolean as false.  A database without ``res_users``
    or without its ``share`` column is not one this can measure:
    :class:`~.pg.PgError`.
    """
    with conn.cursor() as cr:
        columns = _columns(cr, "res_users")
        if not columns:
            raise pg.PgError("No res_users table: this is not an Odoo database.")
        missing = {"id", "login", "active", "share"} - columns
        if missing:
            raise pg.PgError("res_users has no %s column: not an Odoo database this module can "
                             "measure." % ", ".join(sorted(missing)))
        cr.execute("""SELECT count(*) FROM res_users
                       WHERE active IS TRUE AND share IS NOT TRUE
                         AND id <> %s AND login IS DISTINCT FROM %s""",
                   (SUPERUSER_ID, SYSTEM_LOGIN))
        return cr.fetchone()[0]


def database_sizes(conn, names):
    """``{name: bytes}`` of the databases in ``names`` that exist, in one query.

    ``conn`` is a maintenance connection; sizes are read from disk by the
    server, so databases that refuse connections are measured too.
    """
    names = list(names)
    if not names:
        return {}
    with conn.cursor() as cr:
        cr.execute("""SELECT datname, pg_database_size(oid) FROM pg_database
                       WHERE datname = ANY(%s)""", (names,))
        return {name: size for name, size in cr.fetchall() if size is not None}


def _connections_allowed(conn, names):
    """``{name: datallowconn}`` of the databases in ``names`` that exist."""
    with conn.cursor() as cr:
        cr.execute("SELECT datname, datallowconn FROM pg_database WHERE datname = ANY(%s)",
                   (names,))
        return dict(cr.fetchall())


def _add_error(usage, text):
    usage.error = "%s; %s" % (usage.error, text) if usage.error else text


def _count_users(params, database):
    conn = connect_read_only(params, database)
    try:
        return count_internal_users(conn)
    finally:
        conn.close()


def _filestore_bytes(data_dir, database):
    return filestore.tree_size(filestore.filestore_path(data_dir, database))


def measure(params, databases, data_dir, count_users=True):
    """``{name: Usage}`` for every name in ``databases``; never raises for one database.

    Sizes and connection flags come from one maintenance connection; users
    from one read-only connection per database that accepts connections,
    only when ``count_users``.  When the maintenance connection itself
    fails, every database gets that error (their filestores are still
    measured).
    """
    names = list(dict.fromkeys(databases))
    result = {name: Usage(name) for name in names}
    for usage in result.values():
        try:
            usage.filestore_bytes = _filestore_bytes(data_dir, usage.database)
        except (ValueError, OSError) as exc:
            _add_error(usage, "filestore: %s" % exc)
    if not names:
        return result
    try:
        with pg.maintenance(params) as conn:
            sizes = database_sizes(conn, names)
            allowed = _connections_allowed(conn, names)
    except psycopg2.Error as exc:
        for usage in result.values():
            _add_error(usage, "PostgreSQL: %s" % _reason(exc))
        return result
    for usage in result.values():
        if usage.database not in allowed:
            _add_error(usage, "database %s does not exist" % usage.database)
            continue
        usage.database_bytes = sizes.get(usage.database)
        if not (count_users and allowed[usage.database]):
            continue
        try:
            usage.users = _count_users(params, usage.database)
        except (psycopg2.Error, pg.PgError) as exc:
            _add_error(usage, "users: %s" % _reason(exc))
    return result


def disk_space(path):
    """``(total, free)`` bytes of the filesystem holding ``path`` (its nearest existing
    parent: a data dir not made yet still has a disk), as an unprivileged user sees it."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    usage = shutil.disk_usage(path or "/")
    return usage.total, usage.free
