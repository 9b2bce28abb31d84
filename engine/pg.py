"""PostgreSQL operations on whole databases: exists, clone, drop, size, sessions, locks.

Every statement runs on its own autocommit connection to the maintenance
database (``CREATE/DROP DATABASE`` cannot run inside a transaction, and must
not run inside Odoo's request transaction either).  Every database or role
name reaches SQL through :class:`psycopg2.sql.Identifier`; names are also
validated by the caller (see :mod:`.naming`).

Clone strategy: PostgreSQL 15 offers ``STRATEGY WAL_LOG`` (its default: copies
block by block through the WAL, cost grows with the template's size) and
``FILE_COPY`` (copies the files but forces two checkpoints, cost grows with
the whole cluster's dirty buffers).  ``bench/bench_provision.py`` measures both
on the same template; on a base+mail template WAL_LOG was faster (p50 0.22 s
against 0.30 s), so it is the default; ``saas.clone_strategy`` overrides it
(see CONFIGURATION.md, "Clone strategy").
"""

import contextlib
import os
import subprocess

import psycopg2
from psycopg2 import sql

MAINTENANCE_DB = "postgres"
STRATEGIES = ("FILE_COPY", "WAL_LOG")
DEFAULT_STRATEGY = "WAL_LOG"


class PgError(Exception):
    """A database operation failed; the message is meant for the operator."""


@contextlib.contextmanager
def maintenance(params):
    """An autocommit connection to the maintenance database.

    ``params`` are psycopg2 connection keywords (host, port, user, password);
    the database is always :data:`MAINTENANCE_DB`.
    """
    conn = psycopg2.connect(dbname=MAINTENANCE_DB, **params)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def _fetch_one(conn, query, args=()):
    with conn.cursor() as cr:
        cr.execute(query, args)
        row = cr.fetchone()
    return row[0] if row else None


def _execute(conn, query, args=()):
    with conn.cursor() as cr:
        cr.execute(query, args)


def exists(conn, name):
    return bool(_fetch_one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", (name,)))


def owner(conn, name):
    return _fetch_one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                      (name,))


def size(conn, name):
    """Size in bytes of database ``name`` (``None`` when it does not exist)."""
    if not exists(conn, name):
        return None
    return _fetch_one(conn, "SELECT pg_database_size(%s)", (name,))


def terminate_sessions(conn, name):
    """Terminate every other backend connected to ``name``; return how many."""
    return _fetch_one(conn, """
        SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = %s AND pid <> pg_backend_pid()""", (name,))


def allow_connections(conn, name, allowed):
    """Let clients connect to ``name`` or not (superusers included)."""
    _execute(conn, sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        sql.Identifier(name), sql.Literal(bool(allowed))))


def mark_template(conn, name, is_template):
    """Flag ``name`` as a PostgreSQL template (cloneable by any CREATEDB role)."""
    _execute(conn, sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE {}").format(
        sql.Identifier(name), sql.Literal(bool(is_template))))


def connections_allowed(conn, name):
    return bool(_fetch_one(conn, "SELECT datallowconn FROM pg_database WHERE datname = %s",
                           (name,)))


def clone(conn, template, target, *, owner_role=None, strategy=DEFAULT_STRATEGY, hidden=False):
    """``CREATE DATABASE target TEMPLATE template`` owned by ``owner_role``.

    The template must have no other session: PostgreSQL refuses to copy a
    database that is in use.  Callers either keep templates locked
    (connections disallowed) or call :func:`terminate_sessions` first.
    ``hidden`` creates the clone flagged ``IS_TEMPLATE``: Odoo lists (and so
    serves) no template database, while the owner can still connect to it.
    Raises :class:`PgError` with PostgreSQL's reason on failure.
    """
    if strategy not in STRATEGIES:
        raise PgError("Unknown clone strategy %r." % strategy)
    query = sql.SQL("CREATE DATABASE {target} WITH TEMPLATE {template}{owner} "
                    "STRATEGY {strategy} IS_TEMPLATE {hidden}").format(
        target=sql.Identifier(target),
        template=sql.Identifier(template),
        owner=sql.SQL(" OWNER {}").format(sql.Identifier(owner_role)) if owner_role
        else sql.SQL(""),
        strategy=sql.SQL(strategy),
        hidden=sql.Literal(bool(hidden)),
    )
    try:
        _execute(conn, query)
    except psycopg2.Error as exc:
        raise PgError("Cannot clone %s into %s: %s" % (
            template, target, (exc.pgerror or str(exc)).strip())) from exc


def rename(conn, name, new_name):
    """``ALTER DATABASE name RENAME TO new_name`` (needs no connection to either)."""
    try:
        _execute(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(name), sql.Identifier(new_name)))
    except psycopg2.Error as exc:
        raise PgError("Cannot rename %s to %s: %s" % (
            name, new_name, (exc.pgerror or str(exc)).strip())) from exc


def set_comment(conn, name, text):
    """Tag a database (``COMMENT ON DATABASE``), e.g. with who created it."""
    _execute(conn, sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(name), sql.Literal(text)))


def comment(conn, name):
    return _fetch_one(conn, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                            "WHERE datname = %s", (name,))


def drop(conn, name):
    """Drop ``name``, ending its sessions first; no error when it is absent.

    A database flagged as a template is unflagged first (PostgreSQL refuses
    to drop templates).
    """
    try:
        if _fetch_one(conn, "SELECT datistemplate FROM pg_database WHERE datname = %s",
                      (name,)):
            mark_template(conn, name, False)
        _execute(conn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
    except psycopg2.Error as exc:
        raise PgError("Cannot drop %s: %s" % (name, (exc.pgerror or str(exc)).strip())) from exc


def dump(params, name, path, pg_dump="pg_dump"):
    """``pg_dump -Fc`` of ``name`` into ``path``, then check it lists back (pg_restore -l)."""
    env = dict(os.environ)
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                     ("password", "PGPASSWORD")):
        if params.get(key):
            env[var] = str(params[key])
    done = subprocess.run([pg_dump, "-Fc", "-f", path, "--", name], env=env,
                          capture_output=True, text=True, errors="replace", check=False)
    if done.returncode:
        raise PgError("pg_dump of %s failed: %s" % (name, done.stderr.strip()))
    listed = subprocess.run(["pg_restore", "-l", path], capture_output=True, text=True,
                            errors="replace",
                            check=False)
    if listed.returncode or "TABLE DATA" not in listed.stdout:
        raise PgError("The backup %s of %s does not read back." % (path, name))
    return path
