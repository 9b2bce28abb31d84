"""Odoo's own backup format: a zip of ``dump.sql``, ``filestore/`` and ``manifest.json``.

What Odoo's database manager downloads (``odoo.service.db.dump_db``) and
restores (``restore_db``): ``dump.sql`` is ``pg_dump --no-owner`` as plain SQL,
``filestore/<path>`` every file of the filestore, ``manifest.json`` the Odoo
version and modules.  :func:`export_zip` writes one from a verified
:class:`.backup.Backup`, so customers can take their data elsewhere;
:func:`import_zip` creates a database and filestore from one, so they can
bring it in.

An uploaded zip is data from outside, so :func:`inspect` reads its central
directory before anything is created: only the three kinds of members, safe
names, no links or special files, bounded counts, sizes and compression
ratios (:class:`Limits`), and an Odoo 18 manifest.  Extraction then counts
the bytes really read, since declared sizes can lie.

Running ``dump.sql`` as Odoo's role (CREATEDB, not a superuser):

* ``psql -X -q -v ON_ERROR_STOP=1 --single-transaction``: the first error
  stops the restore and nothing of it is committed (Odoo's own restore runs
  ``psql`` without ``ON_ERROR_STOP`` and keeps whatever succeeded).  The
  transaction also refuses ``CREATE``/``DROP DATABASE``.
* Restricted mode (``\\restrict`` with a key only this process knows,
  given before the script): a backslash command in an uploaded script
  (``\\!`` runs a shell, ``\\o``, ``\\copy`` and ``\\i`` touch files,
  ``\\c`` connects elsewhere) stops the restore instead of running.  Dumps
  from current ``pg_dump`` releases bracket themselves with their own
  ``\\restrict KEY``/``\\unrestrict KEY`` lines; those two lines (only
  them) are blanked, as restricted mode cannot be entered twice.  A
  ``psql`` without restricted mode (before 17.6, 16.10, 15.14, 14.19,
  13.22) is refused.
* What a real Odoo 18 dump needs beyond its own tables: ``CREATE EXTENSION
  pg_trgm`` (and ``unaccent`` where Odoo was told to use it) and ``COMMENT
  ON EXTENSION``.  Both are trusted extensions since PostgreSQL 13: the new
  database's owner may create them and, owning them, comment on them.  ``SET
  row_security = off`` is allowed to any role.  An extension that is not
  trusted, an ``ALTER ... OWNER TO`` another role (dumps made without
  ``--no-owner``), or a setting this server does not know (``SET
  transaction_timeout``, written by ``pg_dump`` 17) fails the import with
  psql's message: statements are never rewritten or skipped.
* What restricted mode and the transaction cannot stop: SQL that Odoo's
  role may run anywhere (``ALTER ROLE CURRENT_USER``, ``ALTER DATABASE``
  or ``COMMENT ON DATABASE`` of the other databases it owns).  A zip is as
  trusted as whoever uploads it: importing is for the manager's operators.
"""

import contextlib
import gzip
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass

from . import backup, naming, pg, server

#: The Odoo series this manager serves: a zip made by another one is refused.
ODOO_MAJOR = 18
DUMP = "dump.sql"
MANIFEST = "manifest.json"
FILESTORE = "filestore/"
CHUNK = backup.CHUNK
#: ``manifest.json`` of a database with every module lists a few hundred: 16 MiB is ample.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Longest member name component (NAME_MAX of Linux file systems).
MAX_COMPONENT_BYTES = 255
#: Compression methods the standard library reads.
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_UNIX = 3  # ZipInfo.create_system of archives made on Unix: external_attr holds st_mode
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_SERIES_RE = re.compile(r"(saas~)?(\d+)(?:\.(\d+))?")
_LABEL_RE = re.compile(r"[\w.~+-]{1,40}", re.ASCII)  # a version shown as it is
_RESTRICT_RE = re.compile(rb"\\restrict ([A-Za-z0-9]+)\r?\n")


class ZipRejected(backup.BackupError):
    """An uploaded zip that is not an Odoo 18 backup this manager restores; the message
    says why, for the operator."""


@dataclass(frozen=True)
class Limits:
    """What an uploaded zip may hold: ``max_members`` entries, ``max_total_bytes``
    uncompressed in all, and no member over ``ratio_from_bytes`` that expands more than
    ``max_ratio`` times its compressed size (a zip bomb; small members expand as they
    like), nor with a name over ``max_name_bytes``."""

    max_members: int = 1_000_000
    max_total_bytes: int = 100 * 1024 ** 3
    max_ratio: int = 200
    ratio_from_bytes: int = 1024 * 1024
    max_name_bytes: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass
class ZipSummary:
    """An uploaded zip that :func:`inspect` accepts: its manifest (``{}`` without one),
    the declared size of ``dump.sql``, its filestore files and all its bytes."""

    manifest: dict
    dump_bytes: int
    files: int
    total_bytes: int


@dataclass
class Imported:
    """What :func:`import_zip` created: the manifest read, the files extracted and the row
    counts of the new database (see :func:`.backup.row_counts`)."""

    manifest: dict
    files: int
    row_counts: dict


def odoo_manifest(made, db_name, version_info, version=None):
    """The ``manifest.json`` Odoo writes for a backup of ``db_name`` (``dump_db_manifest``),
    from what ``made`` recorded; ``version_info``/``version`` as in ``odoo.release``."""
    return {
        "odoo_dump": "1",
        "db_name": db_name,
        "version": version or "%s.%s" % tuple(version_info[:2]),
        "version_info": list(version_info),
        "major_version": "%s.%s" % tuple(version_info[:2]),
        "pg_version": made.pg_version,
        "modules": dict(made.modules),
    }


# -- export ------------------------------------------------------------------------------
def export_zip(params, made, zip_path, manifest):
    """Write ``made`` as Odoo's backup zip at ``zip_path``; return its size in bytes.

    ``made`` is verified first (sizes and checksums).  ``dump.sql`` is
    ``pg_restore --no-owner -f -`` of the dump, streamed into the zip, never
    on disk uncompressed; ``filestore/...`` every regular file of the
    archive, streamed member by member; ``manifest.json`` the given dict.
    ``ZIP_DEFLATED``, zip64 where needed, as Odoo's ``zip_dir`` writes it.
    The zip is written to ``zip_path + ".part"`` (mode 0600, customer data)
    and renamed when complete; an existing ``zip_path`` or ``.part`` is
    refused, and on failure the ``.part`` is removed.
    """
    backup.verify(made)
    if os.path.lexists(zip_path):
        raise backup.BackupExistsError("%s already exists: an export is never overwritten."
                                       % zip_path)
    part = zip_path + ".part"
    try:
        handle = open(part, "xb", opener=backup._private)  # noqa: SIM115 (closed below)
    except FileExistsError:
        raise backup.BackupExistsError("%s exists: another export is writing it, or one was "
                                       "interrupted (remove it)." % part) from None
    try:
        with handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED,
                                     allowZip64=True) as archive:
            _write_dump(params, made.dump_path, archive)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=4))
            files = _write_filestore(made.filestore_path, archive)
        if files != made.files:
            raise backup.BackupError("The filestore archive %s holds %d files, the backup "
                                     "recorded %d." % (made.filestore_path, files, made.files))
        os.replace(part, zip_path)
    except BaseException as exc:
        backup._remove_files([part])
        if isinstance(exc, (OSError, zipfile.BadZipFile, *backup._ARCHIVE_ERRORS)):
            raise backup.BackupError("Export of %s to %s failed: %s" % (
                made.dump_path, zip_path, exc)) from exc
        raise
    return os.path.getsize(zip_path)


def _write_dump(params, dump_path, archive):
    """Stream ``pg_restore --no-owner -f -`` of ``dump_path`` into the entry ``dump.sql``:
    the plain SQL Odoo's own ``pg_dump --no-owner`` writes."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(["pg_restore", "--no-owner", "-f", "-", "--", dump_path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errors, env=server.pg_env(params))
        try:
            with proc.stdout, archive.open(DUMP, "w", force_zip64=True) as entry:
                shutil.copyfileobj(proc.stdout, entry, CHUNK)
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.wait()
        if proc.returncode:
            errors.seek(0)
            done = subprocess.CompletedProcess(proc.args, proc.returncode,
                                               stderr=errors.read().decode(errors="replace"))
            raise backup.BackupError("pg_restore of %s to SQL failed: %s" % (
                dump_path, pg.failure(done)))


def _zip_time(mtime):
    """A zip entry's date for ``mtime``: zip dates run from 1980 to 2107."""
    fields = time.localtime(max(mtime, 0))[:6]
    return max((1980, 1, 1, 0, 0, 0), min(fields, (2107, 12, 31, 23, 59, 58)))


def _write_filestore(tar_path, archive):
    """Copy every regular file of the filestore archive into ``filestore/...``, member by
    member (the archive is read as a stream: no seeking, nothing extracted); return how
    many.  The gzip stream is read to its end, where its CRC is checked."""
    files = 0
    with gzip.open(tar_path, "rb") as unzipped, \
            tarfile.open(fileobj=unzipped, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            name = FILESTORE + member.name
            if _name_problem(name, name, DEFAULT_LIMITS):
                raise backup.BackupError("The filestore archive %s holds an unsafe path: %r"
                                         % (tar_path, member.name))
            info = zipfile.ZipInfo(name, _zip_time(member.mtime))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = member.size
            info.external_attr = (stat.S_IFREG | (member.mode & 0o777)) << 16
            with tar.extractfile(member) as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            files += 1
        while unzipped.read(CHUNK):
            pass
    return files


# -- inspect -----------------------------------------------------------------------------
def inspect(zip_path, limits=DEFAULT_LIMITS):
    """Check an uploaded zip before anything is created from it: a :class:`ZipSummary`.

    Raises :class:`ZipRejected` with the reason when it is not a zip, lacks
    ``dump.sql``, holds another member than ``dump.sql``, ``manifest.json``
    and ``filestore/...``, an unsafe name (absolute, ``..``, backslash,
    drive letter, NUL or control character, too long), a link or special
    file, an encrypted member or an unknown compression, more than
    ``limits`` allow, or a manifest that is not a JSON object or names
    another Odoo version than 18.0.  Only the central directory and the
    manifest are read.
    """
    with _opened(zip_path) as archive:
        return _summary(archive, limits)


@contextlib.contextmanager
def _opened(zip_path):
    """``zip_path`` open as a :class:`zipfile.ZipFile`, or :class:`ZipRejected` when it is
    not a zip."""
    if not os.path.isfile(zip_path):
        raise backup.BackupError("%s is missing." % zip_path)
    if not zipfile.is_zipfile(zip_path):
        raise ZipRejected("The uploaded file is not a zip file.")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ZipRejected("The zip cannot be read: %s" % exc) from exc
    with archive:
        yield archive


def _summary(archive, limits):
    """:func:`inspect` of an open ``archive``: the directory it will be extracted with."""
    dump_bytes, files, total = _check_members(archive.infolist(), limits)
    try:
        manifest = _read_manifest(archive)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ZipRejected("The zip's manifest.json cannot be read: %s" % exc) from exc
    return ZipSummary(manifest, dump_bytes, files, total)


def _check_members(infos, limits):
    """``(dump.sql bytes, filestore files, total bytes)`` of ``infos``, every member
    checked (see :func:`inspect`)."""
    if len(infos) > limits.max_members:
        raise ZipRejected("The zip holds %d members, at most %d are accepted." % (
            len(infos), limits.max_members))
    seen, files, total = set(), 0, 0
    for info in infos:
        _check_member(info, limits)
        if info.filename in seen:
            raise ZipRejected("The zip holds %s twice." % _shown(info.filename))
        seen.add(info.filename)
        files += not info.is_dir() and info.filename.startswith(FILESTORE)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ZipRejected("The zip expands to more than %d bytes, the most accepted." %
                              limits.max_total_bytes)
    _check_paths(seen)
    dump = next((info for info in infos if info.filename == DUMP), None)
    if dump is None:
        raise ZipRejected("The zip holds no dump.sql: it is not an Odoo backup (made with "
                          "the database manager's backup format 'zip').")
    return dump.file_size, files, total


def _check_paths(names):
    """Refuse a member that is a file and, in another member's path, a directory."""
    parents = {name[:index] for name in names for index, char in enumerate(name)
               if char == "/"}
    clash = sorted(name for name in names if name in parents)
    if clash:
        raise ZipRejected("The zip holds %s both as a file and as a directory." % _shown(
            clash[0]))


def _check_member(info, limits):
    """Refuse one member: its name, kind, encryption, compression and ratio."""
    name = info.filename
    problem = _name_problem(name, info.orig_filename, limits)
    if problem:
        raise ZipRejected("The zip holds an unsafe name %s: %s." % (_shown(name), problem))
    if not (name in (DUMP, MANIFEST) or name.startswith(FILESTORE)):
        raise ZipRejected("The zip holds %s: an Odoo backup holds only dump.sql, manifest.json "
                          "and filestore/." % _shown(name))
    kind = _kind_problem(info)
    if kind:
        raise ZipRejected("The zip member %s is %s: only files and directories are "
                          "restored." % (_shown(name), kind))
    if info.flag_bits & 0x1:
        raise ZipRejected("The zip member %s is encrypted." % _shown(name))
    if info.compress_type not in _METHODS:
        raise ZipRejected("The zip member %s uses compression method %d, which cannot be "
                          "read here." % (_shown(name), info.compress_type))
    if info.file_size > limits.ratio_from_bytes and \
            info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise ZipRejected("The zip member %s expands %d times (%d bytes from %d), more than "
                          "the %d accepted: a zip bomb?" % (
                              _shown(name), info.file_size // max(info.compress_size, 1),
                              info.file_size, info.compress_size, limits.max_ratio))


def _name_problem(name, raw_name, limits):
    """Why member ``name`` (``raw_name`` before zipfile cut it at a NUL) may not be
    extracted, or ``None``."""
    problem = None
    if _CONTROL_RE.search(raw_name):
        problem = "NUL or control characters"
    elif "\\" in name:
        problem = "a backslash"
    elif name.startswith("/") or _DRIVE_RE.match(name):
        problem = "an absolute path"
    elif len(name.encode()) > limits.max_name_bytes:
        problem = "longer than %d bytes" % limits.max_name_bytes
    else:
        parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            problem = "an empty, '.' or '..' path component"
        elif any(len(part.encode()) > MAX_COMPONENT_BYTES for part in parts):
            problem = "a component longer than %d bytes" % MAX_COMPONENT_BYTES
    return problem


def _kind_problem(info):
    """What ``info`` is when neither a file nor a directory (a symlink...), else ``None``."""
    mode = info.external_attr >> 16 if info.create_system == _UNIX else 0
    kind = stat.S_IFMT(mode)
    if not kind:
        return "a directory with content" if info.is_dir() and info.file_size else None
    if kind == stat.S_IFREG and not info.is_dir():
        return None
    if kind == stat.S_IFDIR and info.is_dir() and not info.file_size:
        return None
    names = {stat.S_IFLNK: "a symbolic link", stat.S_IFDIR: "a directory named as a file",
             stat.S_IFREG: "a file named as a directory"}
    return names.get(kind, "a special file (mode %o)" % kind)


def _shown(name):
    return naming.shown(name, 120)


def _read_manifest(archive):
    """The manifest of ``archive`` (``{}`` without one), refused unless it is a JSON object
    of an Odoo 18.0 database."""
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        return {}
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ZipRejected("manifest.json has %d bytes, at most %d are accepted." % (
            info.file_size, MAX_MANIFEST_BYTES))
    with archive.open(info) as handle:
        data = handle.read(MAX_MANIFEST_BYTES + 1)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ZipRejected("manifest.json is not valid JSON: %s" % exc) from None
    if not isinstance(manifest, dict):
        raise ZipRejected("manifest.json is not a JSON object.")
    _check_series(manifest)
    return manifest


def manifest_series(manifest):
    """The Odoo version a manifest says its database was made by (``"18.0"``,
    ``"saas~17.4"``), from ``major_version``, else ``version_info``, else ``version``;
    ``None`` when it says none."""
    for key in ("major_version", "version_info", "version"):
        value = manifest.get(key)
        if isinstance(value, list) and len(value) >= 2:  # noqa: PLR2004 (major, minor)
            return "%s.%s" % (value[0], value[1])
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and \
                str(value):
            return str(value)
    return None


def _check_series(manifest):
    """Refuse a manifest of another Odoo version: its database would not load here."""
    series = manifest_series(manifest)
    if series is None:
        return
    found = _SERIES_RE.match(series)
    if found and not found.group(1) and int(found.group(2)) == ODOO_MAJOR \
            and found.group(3) in (None, "0"):
        return
    label = series if _LABEL_RE.fullmatch(series) else _shown(series)
    raise ZipRejected("This backup was made by Odoo %s; this server runs Odoo %d.0. Restore "
                      "it on Odoo %s and upgrade it to %d.0 first." % (
                          label, ODOO_MAJOR, label, ODOO_MAJOR))


# -- import ------------------------------------------------------------------------------
class _Budget:
    """Bytes really read from a zip, against the most accepted: declared sizes can lie."""

    def __init__(self, limit):
        self.limit, self.used = limit, 0

    def take(self, data, name):
        self.used += len(data)
        if self.used > self.limit:
            raise ZipRejected("The zip expands to more than %d bytes while %s is read, the "
                              "most accepted (its declared sizes are wrong)." % (
                                  self.limit, _shown(name)))
        return data


def import_zip(params, zip_path, database, filestore_dir, limits=DEFAULT_LIMITS):
    """Create ``database`` and ``filestore_dir`` (neither may exist) from the Odoo backup
    zip at ``zip_path``: an :class:`Imported`.

    The zip is inspected first (:func:`inspect`, on the very directory it
    is then extracted with), nothing is created for a refused one.  The
    database is created as :func:`.backup.restore` does, ``dump.sql``
    streamed into ``psql`` (see the module's documentation),
    the filestore members extracted into a new ``filestore_dir``, every
    byte read counted against ``limits``.  Any failure drops the database
    and removes the directory this call created: :class:`ZipRejected` when
    the zip is to blame, :class:`.backup.BackupError` otherwise, or the
    server's own error when it cannot be reached.
    """
    with _opened(zip_path) as archive:
        summary = _summary(archive, limits)
        backup._check_database(database, "database")
        _check_psql()
        if os.path.lexists(filestore_dir):
            raise backup.TargetExistsError("%s already exists: import into a new filestore."
                                           % filestore_dir)
        backup._create_database(params, database)
        made_dir = None
        try:
            budget = _Budget(limits.max_total_bytes)
            _run_dump(params, archive, database, summary.manifest, budget)
            os.makedirs(filestore_dir)
            made_dir = filestore_dir
            files = _extract_filestore(archive, filestore_dir, budget)
            counts = backup._counts_of(params, database)
        except BaseException as exc:
            left = backup._remove_copy(params, database, made_dir)
            _raise_import_failure(exc, database, left)
            raise
    return Imported(summary.manifest, files, counts)


def _raise_import_failure(exc, database, left):
    """Raise ``exc`` as :func:`import_zip` reports it, with what could not be removed;
    return for what is raised as it is (Ctrl-C, the server's own errors)."""
    if isinstance(exc, (zipfile.BadZipFile, EOFError)):
        error, reason = ZipRejected, "The zip is damaged: %s" % exc
    elif isinstance(exc, backup.BackupError):
        error, reason = type(exc), str(exc)
    elif isinstance(exc, OSError):
        error, reason = backup.BackupError, "Import of %s failed: %s" % (database, exc)
    else:
        return
    raise error("; ".join([reason, *left])) from exc


def _check_psql():
    """Refuse a ``psql`` without restricted mode: an uploaded script could run its
    backslash commands (a shell, files)."""
    try:
        done = subprocess.run(["psql", "--help=commands"], capture_output=True, text=True,
                              errors="replace", check=False)
    except OSError as exc:
        raise backup.BackupError("psql cannot be run: %s" % exc) from exc
    if "\\restrict" not in done.stdout:
        raise backup.BackupError(
            "This psql has no restricted mode (\\restrict): it would run the backslash "
            "commands of an uploaded dump.sql. Install PostgreSQL client 17.6, 16.10, 15.14, "
            "14.19, 13.22 or later.")


def _run_dump(params, archive, database, manifest, budget):
    """Stream ``dump.sql`` into ``psql`` in one transaction, in restricted mode.

    ``psql`` is killed, not given the end of its input, when reading the zip
    fails: at the end of input it would commit what it ran so far.
    """
    key = secrets.token_hex(32)
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
           "-d", backup._conninfo(database), "-c", "\\restrict " + key, "-f", "-"]
    with tempfile.TemporaryFile() as errors, archive.open(DUMP) as member:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=errors, env=server.pg_env(params))
        try:
            with contextlib.suppress(BrokenPipeError):  # psql stopped: its error says why
                for piece in _unrestricted(member, budget):
                    proc.stdin.write(piece)
                proc.stdin.close()
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.wait()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        if proc.returncode:
            errors.seek(0)
            _psql_failed(params, proc, errors.read().decode(errors="replace"), manifest)


#: psql's exit status for an error in its script (with ON_ERROR_STOP); 1 is its own
#: fatal error, 2 a lost connection.
_SCRIPT_ERROR = 3


def _psql_failed(params, proc, stderr, manifest):
    """Raise why ``dump.sql`` did not restore: :class:`ZipRejected` for an error of the
    script, else :class:`.backup.BackupError` (or the server's error when it is down)."""
    with pg.maintenance(params):
        pass
    reason = pg.failure(subprocess.CompletedProcess(proc.args, proc.returncode, stderr=stderr))
    if proc.returncode != _SCRIPT_ERROR:
        raise backup.BackupError("psql could not run dump.sql: %s" % reason[-4000:])
    made_on = manifest.get("pg_version")
    made_on = str(made_on) if made_on else ""
    shown = made_on if _LABEL_RE.fullmatch(made_on) else _shown(made_on)
    hint = " (the dump was made on PostgreSQL %s)" % shown if made_on else ""
    raise ZipRejected("dump.sql does not restore%s: %s" % (hint, reason[-4000:]))


def _unrestricted(member, budget):
    """The lines of ``dump.sql``, with its own ``\\restrict KEY`` header line and the
    matching ``\\unrestrict KEY`` line blanked (line numbers kept for psql's errors).

    Read ``CHUNK`` bytes at most at a time: a line longer than that (a
    large row of ``COPY`` data) passes in pieces and is never one of them.
    """
    own_key, header, at_start = None, True, True
    while True:
        piece = budget.take(member.readline(CHUNK), DUMP)
        if not piece:
            return
        whole = at_start and (piece.endswith(b"\n") or len(piece) < CHUNK)
        at_start = piece.endswith(b"\n")
        if whole and own_key and piece.rstrip(b"\r\n") == b"\\unrestrict " + own_key:
            piece = b"\n"
        elif whole and header:
            found = _RESTRICT_RE.fullmatch(piece)
            if found and own_key is None:
                own_key = found.group(1)
                piece = b"\n"
            elif piece.strip() and not piece.startswith(b"--"):
                header = False
        yield piece


def _extract_filestore(archive, root, budget):
    """Write every ``filestore/`` member under ``root`` (names checked by :func:`inspect`);
    return the files written.  Files are created exclusively: never through a link,
    never over another member."""
    files = 0
    for info in archive.infolist():
        rel = info.filename[len(FILESTORE):] if info.filename.startswith(FILESTORE) else ""
        if not rel:
            continue
        target = os.path.join(root, *rel.rstrip("/").split("/"))
        if info.is_dir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(info) as src, open(target, "xb") as dst:
            while True:
                data = budget.take(src.read(CHUNK), info.filename)
                if not data:
                    break
                dst.write(data)
        files += 1
    return files
