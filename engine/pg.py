"""PostgreSQL operations on whole databases: exists, clone, drop, size, sessions, locks.

Odoo's role is assumed to have ``CREATEDB`` only, as in production: it may end
its own sessions, not another role's nor autovacuum's, so those are waited
for briefly and, if they stay, named in the error (see :func:`terminate_sessions`).

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
import re
import signal
import subprocess
import time

import psycopg2
from psycopg2 import errorcodes, sql

from .errors import RetryableError
from .server import pg_env

MAINTENANCE_DB = "postgres"
STRATEGIES = ("FILE_COPY", "WAL_LOG")
DEFAULT_STRATEGY = "WAL_LOG"
#: Seconds :func:`terminate_sessions` waits for sessions it may not end (another
#: role's, autovacuum's) to go away: as long as PostgreSQL's own DROP/CREATE
#: DATABASE waits for other sessions.
SESSION_WAIT = 5.0
POLL_INTERVAL = 0.1


class PgError(Exception):
    """A database operation failed; the message is meant for the operator."""


class BusyError(PgError, RetryableError):
    """The database is in use by sessions this role may not end: retry later."""


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


def sessions(conn, name):
    """The other sessions on ``name``: ``(pid, role, application, backend type)`` rows.

    The role is ``None`` for autovacuum workers.
    """
    with conn.cursor() as cr:
        cr.execute("""
            SELECT pid, usename, application_name, backend_type FROM pg_stat_activity
             WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY pid""", (name,))
        return cr.fetchall()


def _describe(rows):
    """``pid 42 (role x, application psql, client backend)``, for the operator."""
    return ", ".join("pid %s (%s)" % (pid, ", ".join(
        [*(["role %s" % role] if role else []),
         *(["application %s" % app] if app else []), kind or "backend"]))
        for pid, role, app, kind in rows)


def _end_allowed(conn, name, skip=()):
    """``pg_terminate_backend`` on the sessions of ``name`` this role may end.

    Without superuser, PostgreSQL lets a role end only non-superuser sessions
    of roles whose privileges it has (its own), or any of them with
    pg_signal_backend; autovacuum workers only a superuser may end.  Asking for
    more aborts the whole statement, so the allowed sessions are selected
    first (a MATERIALIZED CTE, evaluated before any termination).  ``skip``:
    pids already ended.  Returns the pids ended.
    """
    with conn.cursor() as cr:
        cr.execute("""
            WITH me AS (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
            allowed AS MATERIALIZED (
                SELECT a.pid FROM pg_stat_activity a
                  LEFT JOIN pg_roles r ON r.oid = a.usesysid, me
                 WHERE a.datname = %s AND a.pid <> pg_backend_pid()
                   AND a.pid <> ALL(%s::int[])
                   AND (me.rolsuper OR (r.oid IS NOT NULL AND NOT r.rolsuper AND (
                        pg_has_role(r.oid, 'USAGE')
                        OR pg_has_role('pg_signal_backend'::name, 'USAGE')))))
            SELECT pid FROM allowed WHERE pg_terminate_backend(pid)""", (name, list(skip)))
        return {row[0] for row in cr.fetchall()}


def terminate_sessions(conn, name, wait=SESSION_WAIT):
    """End every other session on ``name``; return how many this call ended.

    Only the sessions this role may end are terminated (see
    :func:`_end_allowed`); the others (another role's, an autovacuum worker,
    usually done in a moment) are waited for, polling, up to ``wait`` seconds.
    If some are still there, :class:`PgError` names them: the database is
    not free, and the caller must not go on as if it were.
    """
    ended = set()
    deadline = time.monotonic() + wait
    while True:
        ended |= _end_allowed(conn, name, skip=ended)  # also sessions opened meanwhile
        left = sessions(conn, name)
        if not left:
            return len(ended)
        if time.monotonic() >= deadline:
            raise BusyError(
                "Cannot end every session on %s: still connected after %g s: %s. Role %s may "
                "end only its own sessions; end these (or wait for them) and retry."
                % (name, wait, _describe(left), _fetch_one(conn, "SELECT current_user")))
        time.sleep(POLL_INTERVAL)


def end_creation(conn, name, wait=SESSION_WAIT):
    """End this role's sessions still running ``CREATE DATABASE name``; wait until gone.

    A client killed during a ``CREATE DATABASE`` leaves its statement running
    in PostgreSQL, which commits it (creating the database) once done.
    Ended before it commits, the database is never created; after this
    returns, whether it exists no longer changes behind the caller's back.
    """
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(conn)
    query = ("SELECT pid FROM pg_stat_activity WHERE usename = current_user "
             "AND pid <> pg_backend_pid() AND state = 'active' AND starts_with(query, %s)")
    deadline = time.monotonic() + wait
    while True:
        with conn.cursor() as cr:
            cr.execute(query, (statement,))
            pids = [row[0] for row in cr.fetchall()]
        if not pids:
            return
        if time.monotonic() >= deadline:
            raise BusyError("A CREATE DATABASE of %s is still running (pid %s)."
                            % (name, ", ".join(map(str, pids))))
        for pid in pids:
            _fetch_one(conn, "SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(POLL_INTERVAL)


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


def is_template(conn, name):
    return bool(_fetch_one(conn, "SELECT datistemplate FROM pg_database WHERE datname = %s",
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
        error = BusyError if exc.pgcode == errorcodes.OBJECT_IN_USE else PgError
        raise error("Cannot clone %s into %s: %s" % (
            template, target, (exc.pgerror or str(exc)).strip())) from exc


def rename(conn, name, new_name):
    """``ALTER DATABASE name RENAME TO new_name`` (needs no connection to either).

    :class:`BusyError` when a session is still connected to ``name``
    (PostgreSQL refuses to rename a database in use).
    """
    try:
        _execute(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(name), sql.Identifier(new_name)))
    except psycopg2.Error as exc:
        error = BusyError if exc.pgcode == errorcodes.OBJECT_IN_USE else PgError
        raise error("Cannot rename %s to %s: %s" % (
            name, new_name, (exc.pgerror or str(exc)).strip())) from exc


def set_comment(conn, name, text):
    """Tag a database (``COMMENT ON DATABASE``), e.g. with who created it."""
    _execute(conn, sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(name), sql.Literal(text)))


def comment(conn, name):
    return _fetch_one(conn, "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                            "WHERE datname = %s", (name,))


def commented(conn, prefix):
    """The databases owned by this role whose comment starts with ``prefix``:
    ``(name, comment, size in bytes)`` rows, by name.

    Only the connecting role's own databases: those it created (and may drop),
    never another role's that happens to carry a similar comment.  ``prefix``
    is matched literally (no ``LIKE`` pattern: ``_`` and ``%`` are plain
    characters), and must be non-empty text.  A database a failed ``DROP
    DATABASE`` left invalid (``datconnlimit = -2``) is not listed.
    """
    if not isinstance(prefix, str) or not prefix:
        raise PgError("A comment prefix is required.")
    with conn.cursor() as cr:
        cr.execute("""
            SELECT d.datname, c.description, pg_database_size(d.oid)
              FROM pg_database d
              JOIN pg_shdescription c
                ON c.objoid = d.oid AND c.classoid = 'pg_database'::regclass
             WHERE d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)
               AND d.datconnlimit <> -2
               AND starts_with(c.description, %s)
             ORDER BY d.datname""", (prefix,))
        return cr.fetchall()


def drop(conn, name):
    """Drop ``name``, ending its sessions first; no error when it is absent.

    A database flagged as a template is unflagged first (PostgreSQL refuses
    to drop templates).  No ``WITH (FORCE)``: it aborts unless the role may
    end *every* session, autovacuum's included, which only a superuser may.
    The sessions this role may end are ended; a plain ``DROP DATABASE`` then
    cancels autovacuum workers itself and waits up to 5 s for the ended
    sessions to exit.  Another role's session makes it fail, and the error
    names it.
    """
    try:
        if is_template(conn, name):
            mark_template(conn, name, False)
        _end_allowed(conn, name)
        _execute(conn, sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    except psycopg2.Error as exc:
        reason = (exc.pgerror or str(exc)).strip()
        left = sessions(conn, name)
        if left:
            reason += "\nStill connected: %s." % _describe(left)
        raise (BusyError if left else PgError)("Cannot drop %s: %s" % (name, reason)) from exc


#: What ``pg_export_snapshot()`` returns (e.g. ``00000003-0000001B-1``): checked
#: before it reaches a command line.
SNAPSHOT_RE = re.compile(r"[0-9A-F]{8}-[0-9A-F]{8}-[0-9]+")


def dump(params, name, path, snapshot=None, pg_dump="pg_dump"):
    """``pg_dump -Fc`` of ``name`` into ``path``, then check it lists back (pg_restore -l).

    ``snapshot``: a snapshot exported by a transaction the caller keeps open
    (``pg_export_snapshot()``): the dump then holds exactly what that
    transaction sees.
    """
    if snapshot is not None and not SNAPSHOT_RE.fullmatch(snapshot):
        raise PgError("Invalid snapshot identifier %r." % snapshot)
    options = ["--snapshot=%s" % snapshot] if snapshot else []
    done = subprocess.run([pg_dump, "-Fc", *options, "-f", path, "--", name],
                          env=pg_env(params), capture_output=True, text=True,
                          errors="replace", check=False)
    if done.returncode:
        raise PgError("pg_dump of %s failed: %s" % (name, failure(done)))
    listed = subprocess.run(["pg_restore", "-l", path], capture_output=True, text=True,
                            errors="replace",
                            check=False)
    if listed.returncode or "TABLE DATA" not in listed.stdout:
        raise PgError("The backup %s of %s does not read back." % (path, name))
    return path


def failure(done):
    """Why a finished client program (pg_dump, psql...) failed, for the operator: its
    error output, or the signal that killed it (e.g. SIGXFSZ when the file size limit
    is passed: it then writes nothing)."""
    reason = (done.stderr or "").strip()
    if done.returncode < 0:
        number = -done.returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal %d" % number
        killed = "killed by %s (%s)" % (name, signal.strsignal(number) or "unknown signal")
        reason = "%s; %s" % (killed, reason) if reason else killed
    return reason or "exit status %d, no message" % done.returncode
