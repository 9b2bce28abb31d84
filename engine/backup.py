"""Final backups that are read back before anything is dropped, and their restore.

Terminating an instance drops its database and filestore; the backup taken
just before is then the only copy of the customer's data.  So a backup is
only returned once both of its files have been read back:

* the database as ``pg_dump -Fc`` (:func:`.pg.dump` lists it back with
  ``pg_restore -l``);
* the filestore as a ``.tar.gz`` whose every member is read to its end and
  whose regular files are counted against those archived.  Compression
  level 1: attachments are mostly compressed already (images, PDFs,
  office files), a higher level costs time for little space.

A :class:`Backup` carries the size and SHA-256 of both files: the dump's is
computed by reading it once after ``pg_dump`` wrote it, the archive's while it
is read back for verification (no second read).  :func:`verify` checks them
again later (before a termination relies on an earlier backup).

It also records what the dump holds: the rows of every table, the installed
Odoo modules and the server's version.  They are read in the very snapshot
``pg_dump`` dumps (a transaction exports it and stays open until the dump is
done, ``pg_dump --snapshot``), so a restore can be checked against them
exactly, even while the database kept changing during the backup.

Both backup files are reserved first (created exclusively, mode 0600:
they hold customer data), so an existing backup is never overwritten, and a
failed backup removes exactly the files it created.  A restore likewise creates its database and
filestore directory itself, refuses existing ones, and removes both when it
fails.
"""

import contextlib
import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import psycopg2
from psycopg2 import errorcodes, sql

from . import filestore, naming, pg, server

#: Bytes read at a time when reading archive members back.
CHUNK = 1024 * 1024
#: Errors that mean "the archive cannot be written or read", besides OSError.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error)
#: The columns of Odoo's ``ir_module_module`` a backup reads.
_MODULE_COLUMNS = ("name", "latest_version", "state")


class BackupError(pg.PgError):
    """A backup or restore failed; what it had created is removed."""


class BackupExistsError(BackupError):
    """A backup with this database name and stamp exists already (never overwritten)."""


class TargetExistsError(BackupError):
    """The database or directory a restore would create exists already (left as it is)."""


@dataclass
class Backup:
    """A verified backup: its two files, the files archived, both files' sizes and SHA-256
    (hexadecimal), and the stamp its file names carry (``YYYYMMDDTHHMMSSZ``, UTC).

    What the dump holds, read in its own snapshot: ``row_counts``
    (``{"public.table": rows}``, exact), ``modules`` (installed Odoo modules,
    ``{name: latest_version}``; ``{}`` without Odoo's module table) and
    ``pg_version`` (``"15.18"``).  Empty for a backup recorded before they
    were: restore checks then skip what they cannot compare.
    """

    dump_path: str
    filestore_path: str
    files: int
    dump_bytes: int
    filestore_bytes: int
    dump_sha256: str = ""
    filestore_sha256: str = ""
    stamp: str = ""
    row_counts: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    pg_version: str = ""


class _HashingReader(io.RawIOBase):
    """A binary file read through: counts and hashes (SHA-256) every byte read.

    For :class:`gzip.GzipFile`, which only reads forward, or rewinds to the
    start (then the count and hash start again).
    """

    def __init__(self, raw):
        super().__init__()
        self.raw, self.size, self.hash = raw, 0, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self.raw.readinto(buffer)
        if count:
            self.size += count
            self.hash.update(memoryview(buffer)[:count])
        return count

    def seek(self, offset, whence=os.SEEK_SET):
        if (offset, whence) != (0, os.SEEK_SET):
            raise OSError("a verified archive is read forward only")
        self.size, self.hash = 0, hashlib.sha256()
        return self.raw.seek(0)

    def drain(self):
        """Read what is left (bytes after the gzip stream): all of the file is hashed."""
        while self.read(CHUNK):
            pass
        return self.size, self.hash.hexdigest()


def file_digest(path):
    """``(size, sha256)`` of the file at ``path``, read once."""
    with open(path, "rb") as handle:
        return _HashingReader(handle).drain()


def _conninfo(database):
    """A libpq connection string naming ``database`` only.

    Given as ``-d``, a bare name containing ``=`` or starting with
    ``postgresql://`` would be read as connection settings; a quoted
    ``dbname='...'`` is always read as a name.
    """
    return "dbname='%s'" % database.replace("\\", "\\\\").replace("'", "\\'")


# -- filestore archive -------------------------------------------------------------------
def _private(path, flags):
    """``open`` opener creating files readable by their owner only (customer data)."""
    return os.open(path, flags, 0o600)


def _walk_error(exc):
    """``os.walk`` skips unreadable directories unless told: an archive must not."""
    if not isinstance(exc, FileNotFoundError):  # removed meanwhile: nothing to archive
        raise exc


def archive_filestore(src_dir, tar_path):
    """Archive the contents of ``src_dir`` into ``tar_path`` (gzip); return the files archived.

    Member names are relative to ``src_dir``.  A missing ``src_dir`` (a
    database without attachments) gives a valid empty archive.  The archive
    is written to ``tar_path + ".part"`` and renamed when complete, so
    ``tar_path`` is never a partial archive.  A file removed while the
    archive is written (Odoo's attachment garbage collector) is skipped; an
    unreadable one fails the archive.
    """
    part = tar_path + ".part"
    files = 0
    tree = os.walk(src_dir, onerror=_walk_error) if os.path.isdir(src_dir) else ()
    try:
        with open(part, "wb", opener=_private) as raw, \
                tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
            for root, dirs, names in tree:
                dirs.sort()
                for name in dirs + sorted(names):
                    files += _add_member(tar, os.path.join(root, name), src_dir)
        os.replace(part, tar_path)
    except BaseException:
        _remove_files([part])
        raise
    return files


def _add_member(tar, path, src_dir):
    """Add ``path`` (not what is below it) to ``tar``; 1 when it is a regular file, else 0."""
    try:
        info = tar.gettarinfo(path, os.path.relpath(path, src_dir))
        if info is None:  # a socket: nothing to keep
            return 0
        if not info.isreg():
            tar.addfile(info)
            return 0
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
        return 1
    except FileNotFoundError:
        return 0


def verify_archive(tar_path, expected_files):
    """Read every member of ``tar_path`` to its end; raise :class:`BackupError` unless
    it reads back and holds ``expected_files`` regular files.  Returns that count."""
    _read_back_archive(tar_path, expected_files)
    return expected_files


def _read_back_archive(tar_path, expected_files):
    """:func:`verify_archive`, returning ``(size, sha256)`` of the archive as read back.

    After the members, the rest of the gzip stream is read too: gzip checks
    its CRC and length only at the end of the stream; then whatever follows
    it, so that the checksum covers the whole file.
    """
    files = 0
    try:
        with open(tar_path, "rb") as raw:
            reader = _HashingReader(raw)
            with gzip.GzipFile(fileobj=reader, mode="rb") as unzipped, \
                    tarfile.open(fileobj=unzipped, mode="r:") as tar:
                for member in tar:
                    if member.isreg():
                        with tar.extractfile(member) as handle:
                            while handle.read(CHUNK):
                                pass
                        files += 1
                while unzipped.read(CHUNK):
                    pass
            size, digest = reader.drain()
    except (OSError, *_ARCHIVE_ERRORS) as exc:
        raise BackupError("The filestore archive %s does not read back: %s" % (
            tar_path, exc)) from exc
    if files != expected_files:
        raise BackupError("The filestore archive %s holds %d files, %d were archived." % (
            tar_path, files, expected_files))
    return size, digest


def _check_members(tar):
    """Refuse members that would land outside the destination (absolute or ``..``)."""
    for member in tar.getmembers():
        parts = PurePosixPath(member.name).parts
        if member.name.startswith(("/", "\\")) or ".." in parts:
            raise BackupError("The filestore archive holds an unsafe path: %r" % member.name)


def _extract(tar_path, dest_dir):
    """Extract ``tar_path`` into ``dest_dir`` (which must exist) with the ``data`` filter.

    The gzip stream is then read to its end: gzip checks its CRC only there,
    and the tar's last member can end before it, so a damaged file would
    otherwise be extracted without a word.
    """
    with gzip.open(tar_path, "rb") as unzipped, \
            tarfile.open(fileobj=unzipped, mode="r:") as tar:
        _check_members(tar)
        tar.extractall(dest_dir, filter="data")
        while unzipped.read(CHUNK):
            pass


# -- backup ------------------------------------------------------------------------------
def _reserve(path):
    """Create ``path`` empty (mode 0600) or raise :class:`BackupError` when it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise BackupExistsError("%s already exists: a backup is never overwritten." % path) \
            from None


def _remove_files(paths):
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _check_part(label, value):
    if not value or os.sep in value or "\0" in value or value in (".", ".."):
        raise BackupError("Invalid %s for a backup file name: %r" % (label, value))


@contextlib.contextmanager
def _snapshot(params, database):
    """``(conn, snapshot)``: a connection to ``database`` in a read-only REPEATABLE READ
    transaction, and the snapshot it exported, both valid until the block ends.

    ``pg_dump --snapshot`` given that snapshot dumps exactly what the
    transaction sees.  The ACCESS SHARE locks its counts take are held until
    the end too: no table counted can be dropped or rewritten before
    ``pg_dump`` has locked it in turn.
    """
    conn = psycopg2.connect(**dict(params, dbname=database,
                                   application_name="saas_manager backup"))
    try:
        conn.autocommit = True  # the transaction below is ours, not psycopg2's
        with conn.cursor() as cr:
            cr.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cr.execute("SELECT pg_export_snapshot()")
            snapshot = cr.fetchone()[0]
        yield conn, snapshot
    finally:
        conn.close()


def backup(params, database, filestore_dir, backup_dir, stamp):
    """Dump ``database``, archive ``filestore_dir``, both into ``backup_dir``: a :class:`Backup`.

    Files: ``<database>-<stamp>.dump`` and
    ``<database>-<stamp>.filestore.tar.gz``; both are read back before this
    returns, with their sizes and SHA-256.  The row counts, modules and
    server version are read in the snapshot the dump is taken in (see
    :func:`_snapshot`).  Existing files are refused.  On any failure the
    files this call created are removed and :class:`BackupError` says why.
    """
    _check_part("database name", database)
    _check_part("stamp", stamp)
    dump_path, tar_path = _backup_paths(backup_dir, database, stamp)
    created = []
    try:
        os.makedirs(backup_dir, mode=0o700, exist_ok=True)
        for path in (dump_path, tar_path):
            _reserve(path)
            created.append(path)
        with _snapshot(params, database) as (conn, snapshot):
            counts, modules, version = row_counts(conn), installed_modules(conn), \
                server_version(conn)
            pg.dump(params, database, dump_path, snapshot=snapshot)
        dump_bytes, dump_sha256 = file_digest(dump_path)
        files = archive_filestore(filestore_dir, tar_path)
        tar_bytes, tar_sha256 = _read_back_archive(tar_path, files)
        return Backup(dump_path, tar_path, files, dump_bytes, tar_bytes,
                      dump_sha256=dump_sha256, filestore_sha256=tar_sha256, stamp=stamp,
                      row_counts=counts, modules=modules, pg_version=version)
    except BackupError:
        _remove_files(created)
        raise
    except (pg.PgError, psycopg2.Error, OSError, *_ARCHIVE_ERRORS) as exc:
        _remove_files(created)
        reason = (exc.pgerror or str(exc)) if isinstance(exc, psycopg2.Error) else str(exc)
        raise BackupError("Backup of %s failed: %s" % (database, reason.strip())) from exc
    except BaseException:
        _remove_files(created)
        raise


def _backup_paths(backup_dir, database, stamp):
    """The dump and filestore archive of ``database`` taken at ``stamp``."""
    base = os.path.join(backup_dir, "%s-%s" % (database, stamp))
    return base + ".dump", base + ".filestore.tar.gz"


def remove_partial(backup_dir, database, stamp):
    """Remove what a :func:`backup` of ``database`` at ``stamp`` that never returned (its
    process killed) left in ``backup_dir``; return the paths removed.

    A killed run cannot clean up after itself: its reserved dump (empty,
    partial, or even complete), its reserved archive and the archive's
    ``.part`` stay.  Only those names are removed, so other backups, of
    this database or another, are kept.  For an interrupted operation that
    recorded no backup: a run that returned is complete and recorded.  A
    ``pg_dump`` still running after its parent was killed keeps writing to
    the removed file, which frees its space when it exits.
    """
    _check_part("database name", database)
    _check_part("stamp", stamp)
    dump_path, tar_path = _backup_paths(backup_dir, database, stamp)
    removed = []
    for path in (dump_path, tar_path, tar_path + ".part"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed.append(path)
    return removed


def verify(made, checksums=True):
    """Check that both files of ``made`` are still there, with the sizes (then, unless
    ``checksums`` is false, the SHA-256) recorded when it was taken.

    Raises :class:`BackupError` naming every file that is missing or differs.
    Sizes are compared first, for every file, so a missing or truncated file
    is reported without reading anything.
    """
    problems = file_problems(made, checksums)
    if problems:
        raise BackupError("Backup not usable: %s." % "; ".join(problems))


def file_problems(made, checksums=True):
    """What :func:`verify` finds wrong with the files of ``made``, one sentence each
    (``[]``: both files are as recorded)."""
    files = (("database dump", made.dump_path, made.dump_bytes, made.dump_sha256),
             ("filestore archive", made.filestore_path, made.filestore_bytes,
              made.filestore_sha256))
    problems = []
    for label, path, size, _digest in files:
        try:
            actual = os.path.getsize(path) if path else None
        except OSError:
            actual = None
        if actual is None:
            problems.append("the %s %s is missing" % (label, path or "(no path)"))
        elif actual != size:
            problems.append("the %s %s has %d bytes, %d were recorded" % (
                label, path, actual, size))
    if not problems and checksums:
        for label, path, _size, digest in files:
            try:
                actual = file_digest(path)[1]
            except OSError as exc:
                problems.append("the %s %s cannot be read: %s" % (label, path, exc))
                continue
            if not digest:
                problems.append("the %s %s has no recorded checksum" % (label, path))
            elif actual != digest:
                problems.append("the %s %s does not match its checksum (SHA-256 %s, "
                                "recorded %s)" % (label, path, actual, digest))
    return problems


# -- restore -----------------------------------------------------------------------------
def _create_database(params, database):
    """Create ``database`` empty as Odoo creates its databases (UTF8, C collation, template0).

    ``pg_dump -Fc`` without ``--create`` carries no database settings, and
    restoring into a copy of ``template1`` would collide with whatever was
    added to it: PostgreSQL's advice is an empty database from template0.
    """
    with pg.maintenance(params) as conn:
        if pg.exists(conn, database):
            raise TargetExistsError("Database %s already exists: restore into a new name."
                                    % database)
        try:
            with conn.cursor() as cr:
                cr.execute(sql.SQL("CREATE DATABASE {} ENCODING 'unicode' LC_COLLATE 'C' "
                                   "TEMPLATE template0").format(sql.Identifier(database)))
        except psycopg2.Error as exc:
            error = TargetExistsError if exc.pgcode == errorcodes.DUPLICATE_DATABASE \
                else BackupError
            raise error("Cannot create %s: %s" % (
                database, (exc.pgerror or str(exc)).strip())) from exc


def _pg_restore(params, dump_path, database):
    done = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error",
                           "-d", _conninfo(database), "--", dump_path],
                          env=server.pg_env(params), capture_output=True, text=True,
                          errors="replace", check=False)
    if done.returncode:
        raise BackupError("pg_restore of %s into %s failed: %s" % (
            dump_path, database, done.stderr.strip()))


def _remove_copy(params, database, filestore_dir):
    """Drop ``database`` and remove ``filestore_dir`` (a failed restore's, a drill's scratch
    copy, a replaced database); return what could not be, one sentence each."""
    problems = []
    if filestore_dir:
        try:
            filestore.remove_tree(filestore_dir)
        except OSError as exc:
            problems.append("removing %s failed: %s" % (filestore_dir, exc))
    try:
        with pg.maintenance(params) as conn:
            pg.drop(conn, database)
    except (pg.PgError, psycopg2.Error) as exc:
        problems.append("dropping %s failed: %s" % (database, str(exc).strip()))
    return problems


def restore(params, backup, database, filestore_dir):
    """Restore ``backup`` into a new database ``database`` and a new ``filestore_dir``.

    Neither may exist.  On failure, the database and the filestore
    directory this call created are removed and :class:`BackupError` says
    why (and what could not be cleaned up).
    """
    for path in (backup.dump_path, backup.filestore_path):
        if not path or not os.path.isfile(path):
            raise BackupError("Backup file %s is missing." % path)
    if os.path.lexists(filestore_dir):
        raise TargetExistsError("%s already exists: restore into a new filestore."
                                % filestore_dir)
    _create_database(params, database)
    made_dir = None
    try:
        _pg_restore(params, backup.dump_path, database)
        os.makedirs(filestore_dir)
        made_dir = filestore_dir
        _extract(backup.filestore_path, filestore_dir)
    except BaseException as exc:
        problems = _remove_copy(params, database, made_dir)
        if not isinstance(exc, (pg.PgError, OSError, *_ARCHIVE_ERRORS)):
            raise
        reason = str(exc) if isinstance(exc, BackupError) else "Restore of %s failed: %s" % (
            database, exc)
        raise BackupError("; ".join([reason, *problems])) from exc


def row_counts(conn):
    """``{"schema.table": rows}`` of every ordinary table of schema ``public`` (exact counts).

    For comparing a restored database with its source.
    """
    counts = {}
    with conn.cursor() as cr:
        cr.execute("""SELECT n.nspname, c.relname FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'public' AND c.relkind = 'r'
                       ORDER BY c.relname""")
        for schema, table in cr.fetchall():
            cr.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)))
            counts["%s.%s" % (schema, table)] = cr.fetchone()[0]
    return counts


def installed_modules(conn):
    """``{name: latest_version}`` of the installed Odoo modules, as Odoo's own backup
    manifest lists them; ``{}`` for a database without Odoo's module table.

    The columns are looked up first: a failing query would abort the
    caller's transaction (and the snapshot a dump is being taken in).
    """
    with conn.cursor() as cr:
        cr.execute("""SELECT count(*) FROM pg_attribute
                       WHERE attrelid = to_regclass('public.ir_module_module')
                         AND attname = ANY(%s) AND NOT attisdropped""",
                   (list(_MODULE_COLUMNS),))
        if cr.fetchone()[0] != len(_MODULE_COLUMNS):
            return {}
        cr.execute("""SELECT name, latest_version FROM public.ir_module_module
                       WHERE state = 'installed' ORDER BY name""")
        return dict(cr.fetchall())


def server_version(conn):
    """The server's version as ``major.minor`` (``"15.18"``)."""
    with conn.cursor() as cr:
        cr.execute("SELECT current_setting('server_version_num')::int")
        return "%d.%d" % divmod(cr.fetchone()[0], 10000)


# -- drill -------------------------------------------------------------------------------
#: Tables named in one sentence of a drill report before "and N more".
MAX_LISTED = 10


@dataclass
class DrillReport:
    """What a restore drill found.  ``ok``: the backup restores, with the rows of every
    table and the files it recorded; else ``problems`` says what differs, one sentence
    each.  ``tables``, ``rows`` and ``files``: what the restore held.  ``notes``: what
    could not be checked (a backup recorded without its row counts)."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    files: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _check_database(name, what):
    """Raise :class:`BackupError` unless ``name`` is a database name the engine may create
    or rename (see :func:`.naming.database_problem`), before it reaches any query."""
    problem = naming.database_problem(name)
    if problem:
        raise BackupError("Invalid %s %s: %s." % (what, naming.shown(name), problem))


def _listed(items):
    """``a, b, c and 4 more``: at most :data:`MAX_LISTED` items, for a readable report."""
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return "%s and %d more" % (shown, more) if more > 0 else shown


def count_problems(recorded, restored):
    """How the row counts ``restored`` differ from those ``recorded`` with a backup, one
    sentence per kind of difference (``[]`` when identical)."""
    missing = sorted(set(recorded) - set(restored))
    extra = sorted(set(restored) - set(recorded))
    different = ["%s (%d rows, %d recorded)" % (table, restored[table], recorded[table])
                 for table in sorted(set(recorded) & set(restored))
                 if restored[table] != recorded[table]]
    problems = []
    if missing:
        problems.append("%d tables of the backup are missing: %s" % (
            len(missing), _listed(missing)))
    if extra:
        problems.append("%d tables are not in the backup's record: %s" % (
            len(extra), _listed(extra)))
    if different:
        problems.append("%d tables have other row counts: %s" % (
            len(different), _listed(different)))
    return problems


def count_files(root):
    """Regular files under ``root`` (what :attr:`Backup.files` counts: not symlinks)."""
    return sum(1 for base, _dirs, names in os.walk(root) for name in names
               if stat.S_ISREG(os.lstat(os.path.join(base, name)).st_mode))


def _counts_of(params, database):
    conn = psycopg2.connect(dbname=database, **params)
    try:
        return row_counts(conn)
    finally:
        conn.close()


def _compare(params, made, database, filestore_dir, report):
    """Fill ``report`` with what ``database`` and ``filestore_dir`` hold, and how it differs
    from what ``made`` recorded; return the row counts of ``database``."""
    counts = _counts_of(params, database)
    report.tables, report.rows = len(counts), sum(counts.values())
    report.files = count_files(filestore_dir)
    if made.row_counts:
        report.problems += count_problems(made.row_counts, counts)
    else:
        report.notes.append("The backup has no recorded row counts (taken before they were "
                            "recorded): %d tables restored, not compared." % len(counts))
    if report.files != made.files:
        report.problems.append("The filestore holds %d files, the backup recorded %d." % (
            report.files, made.files))
    return counts


def drill(params, made, scratch_db, scratch_dir):
    """Restore ``made`` into ``scratch_db`` and ``scratch_dir`` (neither may exist), compare
    with what it recorded, and remove both again: a :class:`DrillReport`.

    The files' sizes and checksums are checked first: a damaged file is
    reported without restoring anything.  A backup that does not restore is
    reported too (``ok`` false, with the reason); a failure of the server or
    of the scratch directory is raised as it is (``psycopg2.Error``,
    :class:`.pg.PgError`, ``OSError``): the backup is not to blame.  The
    scratch copy is removed whatever happens, Ctrl-C included; when it
    cannot be, :class:`BackupError` says what is left.
    """
    started = time.monotonic()
    _check_database(scratch_db, "scratch database")
    report = DrillReport(ok=False, problems=file_problems(made))
    if not report.problems:
        if os.path.lexists(scratch_dir):
            raise TargetExistsError("%s already exists: drill into a new directory."
                                    % scratch_dir)
        _create_database(params, scratch_db)
        try:
            _drill_restored(params, made, scratch_db, scratch_dir, report)
        except BaseException:
            _remove_copy(params, scratch_db, scratch_dir)  # best effort: the failure comes first
            raise
        left = _remove_copy(params, scratch_db, scratch_dir)
        if left:
            raise BackupError("The drill of %s ran (%s), but its scratch copy is left: %s." % (
                made.dump_path, "; ".join(report.problems) or "ok", "; ".join(left)))
    report.ok = not report.problems
    report.seconds = time.monotonic() - started
    return report


def _drill_restored(params, made, scratch_db, scratch_dir, report):
    """Restore into the scratch copy and compare; the backup's own faults go to ``report``."""
    try:
        _pg_restore(params, made.dump_path, scratch_db)
    except BackupError as exc:
        with pg.maintenance(params):  # unreachable: the server's fault, raised as it is
            pass
        report.problems.append(str(exc))
        return
    os.makedirs(scratch_dir)
    try:
        _extract(made.filestore_path, scratch_dir)
    except (BackupError, gzip.BadGzipFile, *_ARCHIVE_ERRORS) as exc:
        report.problems.append("The filestore archive %s does not restore: %s" % (
            made.filestore_path, exc))
    _compare(params, made, scratch_db, scratch_dir, report)


# -- restore in place --------------------------------------------------------------------
@dataclass
class Replaced:
    """What :func:`replace` did.  ``downtime``: seconds the database refused connections
    (from refusing them to the restored copy taking its name and state); ``seconds``: the
    whole call; ``row_counts`` and ``files``: what the database now holds; ``leftovers``:
    what of the old copy could not be removed (the replacement itself succeeded)."""

    downtime: float
    seconds: float
    row_counts: dict
    files: int
    leftovers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Swap:
    """The names and directories :func:`replace` works with."""

    database: str
    filestore_dir: str
    staging_db: str
    staging_dir: str
    old_db: str
    old_dir: str


def _plan(database, filestore_dir, staging_db, old_db):
    """The :class:`_Swap` of a replacement, its names checked before any query: valid,
    distinct, and the staging and old directories (siblings of ``filestore_dir``) new."""
    for name, what in ((database, "database"), (staging_db, "staging database"),
                       (old_db, "old database")):
        _check_database(name, what)
    if len({database, staging_db, old_db}) < len((database, staging_db, old_db)):
        raise BackupError("The database, staging and old names must differ: %s, %s, %s." % (
            database, staging_db, old_db))
    parent = os.path.dirname(os.path.abspath(filestore_dir))
    plan = _Swap(database, os.path.abspath(filestore_dir), staging_db,
                 os.path.join(parent, staging_db), old_db, os.path.join(parent, old_db))
    for path in (plan.staging_dir, plan.old_dir):
        if path == plan.filestore_dir or os.path.lexists(path):
            raise TargetExistsError("%s already exists: choose other staging and old names."
                                    % path)
    return plan


def _check_targets(params, plan):
    """The database to replace must exist, the staging and old ones must not."""
    with pg.maintenance(params) as conn:
        if not pg.exists(conn, plan.database):
            raise BackupError("Database %s does not exist: nothing to replace." % plan.database)
        for name in (plan.staging_db, plan.old_db):
            if pg.exists(conn, name):
                raise TargetExistsError("Database %s already exists: choose other staging "
                                        "and old names." % name)


def replace(params, made, database, filestore_dir, staging_db, old_db,  # noqa: PLR0917
            comment=None, *, wait=pg.SESSION_WAIT, keep_old=False):
    """Replace ``database`` and ``filestore_dir`` by a restore of ``made``: a :class:`Replaced`.

    ``made`` is restored first into ``staging_db`` and its filestore (a
    sibling of ``filestore_dir`` named after it) while ``database`` keeps
    serving, and checked against the rows and files it recorded.  Then the
    swap: ``database`` refuses connections, its sessions are ended (those
    this role may not end are waited for, up to ``wait`` seconds), it is
    renamed ``old_db`` and the staging copy takes its name and its
    filestore's; the new database gets ``comment`` (the ownership marker:
    a dump does not carry it) and the old one's connection and template
    flags.  Then the old copy is removed.

    Any failure before the swap completes undoes what was done: the live
    database is as it was and serving, the staging copy removed, and the
    error (:class:`.pg.BusyError` when a session could not be ended, else
    :class:`BackupError`) says what could not be undone, if anything.

    ``keep_old`` leaves the replaced copy (refusing connections) for the
    caller, who backs it up before it goes (:func:`discard`): it holds what
    was written up to the swap.
    """
    started = time.monotonic()
    plan = _plan(database, filestore_dir, staging_db, old_db)
    verify(made)
    _check_targets(params, plan)
    restore(params, made, plan.staging_db, plan.staging_dir)
    undo = [("drop the staging copy %s" % plan.staging_db,
             lambda: discard(params, plan.staging_db, plan.staging_dir))]
    try:
        counts = _check_staging(params, made, plan)
        downtime = _swap(params, plan, comment, wait, undo)
    except BaseException as exc:
        _undo(plan, undo, exc)
        raise
    leftovers = [] if keep_old else _remove_copy(params, plan.old_db, plan.old_dir)
    return Replaced(downtime, time.monotonic() - started, counts, made.files, leftovers)


def _check_staging(params, made, plan):
    """The staging copy's row counts, after checking them (and its files) against ``made``:
    a database that differs from its backup's record is not swapped in."""
    report = DrillReport(ok=False)
    counts = _compare(params, made, plan.staging_db, plan.staging_dir, report)
    if report.problems:
        raise BackupError("The restored copy of %s differs from the backup's record: %s" % (
            plan.database, "; ".join(report.problems)))
    return counts


def _swap(params, plan, comment, wait, undo):
    """Put the staging copy in place of the live one; return the seconds of downtime.

    What takes each step back is pushed on ``undo`` before the step, and
    checks what is there when it runs: a step interrupted half-way (Ctrl-C
    once a rename is done, before the next line) is undone all the same.
    The staging copy refuses connections until it has its name, filestore
    and marker.
    """
    with pg.maintenance(params) as conn:
        allowed = pg.connections_allowed(conn, plan.database)
        template = pg.is_template(conn, plan.database)
        pg.allow_connections(conn, plan.staging_db, False)
        undo.append(("let clients connect to %s again" % plan.database,
                     lambda: _with_conn(params, pg.allow_connections, plan.database, allowed)))
        pg.allow_connections(conn, plan.database, False)
        refused = time.monotonic()
        undo.append(("rename %s back to %s" % (plan.old_db, plan.database),
                     lambda: _rename_back(params, plan.old_db, plan.database)))
        _rename_free(conn, plan.database, plan.old_db, wait)
        undo.append(("rename %s back to %s" % (plan.database, plan.staging_db),
                     lambda: _rename_back(params, plan.database, plan.staging_db)))
        _rename_free(conn, plan.staging_db, plan.database, wait)
        _swap_dirs(plan, undo)
        if comment is not None:
            pg.set_comment(conn, plan.database, comment)
        if template:
            pg.mark_template(conn, plan.database, True)
        pg.allow_connections(conn, plan.database, allowed)
        return time.monotonic() - refused


def _swap_dirs(plan, undo):
    """Move the live filestore (when there is one) aside and the staging one in place."""
    undo.append(("move %s back to %s" % (plan.old_dir, plan.filestore_dir),
                 lambda: _move_back(plan.old_dir, plan.filestore_dir)))
    if os.path.lexists(plan.filestore_dir):
        os.rename(plan.filestore_dir, plan.old_dir)
    undo.append(("move %s back to %s" % (plan.filestore_dir, plan.staging_dir),
                 lambda: _move_back(plan.filestore_dir, plan.staging_dir)))
    os.rename(plan.staging_dir, plan.filestore_dir)


def _rename_back(params, current, original):
    """Rename database ``current`` back to ``original``, if that rename was done."""
    with pg.maintenance(params) as conn:
        if pg.exists(conn, current) and not pg.exists(conn, original):
            pg.rename(conn, current, original)


def _move_back(current, original):
    """Move directory ``current`` back to ``original``, if that move was done."""
    filestore.move_tree(current, original)


def _rename_free(conn, name, new_name, wait):
    """Rename ``name`` once no session is left on it.

    A session may attach between the end of the others and the rename
    (autovacuum, a superuser: refused connections do not stop them all), so
    a rename refused as busy is tried again until ``wait`` has passed.
    """
    deadline = time.monotonic() + wait
    while True:
        pg.terminate_sessions(conn, name, wait=max(0.0, round(deadline - time.monotonic(), 1)))
        try:
            pg.rename(conn, name, new_name)
            return
        except pg.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pg.POLL_INTERVAL)


def _with_conn(params, function, *args):
    """``function(conn, *args)`` on a new maintenance connection (undo steps do not rely on
    the connection whose failure they are undoing)."""
    with pg.maintenance(params) as conn:
        return function(conn, *args)


def discard(params, database, filestore_dir):
    """Drop a copy the engine made (a replaced database, a scratch or staging copy) and
    its filestore; raise :class:`BackupError` with what could not be removed."""
    left = _remove_copy(params, database, filestore_dir)
    if left:
        raise BackupError("; ".join(left))


def _undo(plan, undo, exc):
    """Run ``undo`` backwards; raise the failure ``exc`` with what could not be undone.

    A ``KeyboardInterrupt`` (or another ``BaseException``) is re-raised by
    the caller as it is, once undone.
    """
    failed = []
    for what, action in reversed(undo):
        try:
            action()
        except (pg.PgError, psycopg2.Error, OSError) as err:
            failed.append("could not %s: %s" % (what, str(err).strip()))
    if not isinstance(exc, Exception):
        return
    state = ("%s is as it was" % plan.database) if not failed else "; ".join(failed)
    error = pg.BusyError if isinstance(exc, pg.BusyError) else BackupError
    raise error("Replacing %s with its backup failed: %s. %s." % (
        plan.database, str(exc).strip().rstrip("."), state)) from exc


def recover_replace(params, database, filestore_dir, staging_db, old_db,  # noqa: PLR0917
                    comment=None, allowed=True):
    """Take back, or keep, what a :func:`replace` whose process was killed left: True
    when the swap had completed.

    A killed replace runs no undo, so its names may be at any step.  The
    swap completed when the replaced copy exists under ``old_db`` and the
    staging copy is gone, database and filestore directory alike (the
    directory is moved into place only after both renames).  Then the new
    database gets ``comment`` and ``allowed`` (the kill may have come
    before they were set), and the replaced copy is left for the caller to
    back up and :func:`discard`.  Otherwise everything is taken back: the
    live database and filestore get their names and ``allowed``
    connections, the staging copy is removed (nothing there is fine), and
    the caller restores again.
    """
    parent = os.path.dirname(os.path.abspath(filestore_dir))
    plan = _Swap(database, os.path.abspath(filestore_dir), staging_db,
                 os.path.join(parent, staging_db), old_db, os.path.join(parent, old_db))
    for name, what in ((database, "database"), (staging_db, "staging database"),
                       (old_db, "old database")):
        _check_database(name, what)
    with pg.maintenance(params) as conn:
        swapped = pg.exists(conn, old_db) and not pg.exists(conn, staging_db) and \
            not os.path.lexists(plan.staging_dir)
        if swapped and comment is not None:
            pg.set_comment(conn, database, comment)
    if not swapped:
        _take_back(params, plan)
    with pg.maintenance(params) as conn:
        if pg.exists(conn, database):
            pg.allow_connections(conn, database, allowed)
    return swapped


def _take_back(params, plan):
    with pg.maintenance(params) as conn:
        if pg.exists(conn, plan.old_db):
            if pg.exists(conn, plan.database):
                if pg.exists(conn, plan.staging_db):
                    raise BackupError("%s, %s and %s all exist: look before anything is "
                                      "renamed." % (plan.database, plan.old_db, plan.staging_db))
                _rename_free(conn, plan.database, plan.staging_db, pg.SESSION_WAIT)
            _rename_free(conn, plan.old_db, plan.database, pg.SESSION_WAIT)
    _move_back(plan.old_dir, plan.filestore_dir)
    discard(params, plan.staging_db, plan.staging_dir)
