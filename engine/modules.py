"""Which modules of a client database need ``-u``: checksums of the addons' code.

A fleet update runs over hundreds of client databases, each a clone of a
template.  Running ``odoo -u all`` on every one costs minutes each; most of
them run exactly the code they were last updated with.  So, as
click-odoo-update and OCA's ``module_auto_update`` do, every installed
module's directory is hashed (:func:`addon_checksum`), the hashes saved by the
database's last successful update are read back (:func:`stored`), and only
the modules whose hash differs are updated (:func:`plan`).  A database whose
code did not change is skipped after three small queries: the addons are hashed
once per campaign (the ``cache`` of :func:`changed_modules`), not once per
database.

**Where the hashes live.**  In a small table of the client database itself,
``saas_module_checksum``, unknown to the ORM, rather than in an
``ir_config_parameter`` row as ``module_auto_update`` does: no screen, export,
import or data file of Odoo's shows, edits or deletes it (System Parameters
lists and edits every ``ir_config_parameter`` row), and one row per module
needs no JSON parsing.  Being in the database, it travels with it: a clone
carries its template's table, which is what we want, since a clone's code
state *is* its template's; a restored backup carries the state of the moment
of the backup.

**Unknown means changed.**  A module with no stored hash (a database updated
before this module existed, a module installed since, a hand-dropped table)
is in :attr:`UpdatePlan.changed`: it is updated once, then known.  Hashing
errs the same way: anything under the directory counts, including ``static/``,
``tests/`` and ``i18n/`` that ``module_auto_update`` can exclude (a data file
may load an image from ``static/``, a ``.po`` change needs ``-u`` to reach the
database); a needless update costs a minute, a wrongly skipped one leaves a
database on stale views and data.  Dependants need no hash of their own
business: ``-u x`` makes Odoo update the installed modules depending on ``x``.
Code outside the module directories (Odoo's framework, ``odoo/*.py``) is not
hashed, as in both tools above.

**Store after success only, with the hashes taken before.**  The caller
computes the plan, runs the update, and only when it succeeded stores
:func:`checksums` of the then installed modules (an update may install new
dependencies), from the same campaign cache: the stored hash is then the one of
the code the update ran, even if the files change meanwhile (that change is
seen by the next campaign).

**Where a module is.**  As ``odoo.modules.module.get_module_path`` of Odoo 18:
the first folder of ``odoo.addons.__path__`` holding ``<name>/__manifest__.py``
(or the legacy ``__openerp__.py``).  That list is *not* just the configured
``addons_path``: it starts with the ``odoo/addons`` folder of the ``odoo``
package (where ``base`` lives: ``odoo/addons/base``; it is first because it is
the ``odoo.addons`` package's own folder), then ``<data_dir>/addons/18.0``,
then the ``addons_path`` entries in order (``initialize_sys_path``).  So a
``base`` (or any module) of a custom addons folder never shadows Odoo's own.
:func:`odoo_addons_paths` builds that list; every other function receives the
list explicitly.  Folders Odoo also adds from ``sys.path`` (other ``odoo/addons``
folders, such as pip-installed addons wheels) are the caller's to add after
the first.
"""

import hashlib
import os
import re
from dataclasses import dataclass

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extras import execute_values

from .naming import shown

#: A module (technical) name, lowercase as saas_manager accepts them everywhere (a
#: template's modules too); use with ``fullmatch`` (the anchors are ``\\A``/``\\Z`` anyway).
NAME_RE = re.compile(r"\A[a-z0-9_]+\Z")
CHECKSUM_RE = re.compile(r"\A[0-9a-f]{64}\Z")
#: Odoo 18's ``MANIFEST_NAMES`` (``odoo/modules/module.py``).
MANIFEST_NAMES = ("__manifest__.py", "__openerp__.py")
#: ``odoo.release.series``: the sub-folder of ``<data_dir>/addons`` Odoo searches.
SERIES = "18.0"
#: States of a module whose code Odoo loads on an update run (``load_modules``).
INSTALLED_STATES = ("installed", "to upgrade", "to remove")
#: Starts every digest: a new format changes every checksum (each module is then
#: updated once) instead of comparing digests of two formats.
FORMAT = b"saas_manager addon checksum 1\0"
_FILE = b"f"
_LINK = b"l"
_CHUNK = 1 << 20

TABLE_DDL = """
    CREATE TABLE IF NOT EXISTS saas_module_checksum (
        name varchar PRIMARY KEY,
        checksum char(64) NOT NULL
    )"""


@dataclass(frozen=True)
class UpdatePlan:
    """What an update of one database must do; see :func:`plan`."""

    #: Installed modules to pass to ``-u`` (sorted).
    changed: tuple
    #: Installed modules the server does not have (sorted): the update must not run.
    missing: tuple
    #: How many installed modules are unchanged.
    unchanged: int

    @property
    def up_to_date(self):
        """Nothing to update and nothing missing: the database can be skipped."""
        return not (self.changed or self.missing)


def check_name(name):
    """``name`` when it is a module name (``[a-z0-9_]+``), else :class:`ValueError`.

    Checked before any path is built with it: ``../x``, ``/etc`` or ``x\\n``
    never reach the filesystem or SQL.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError("not a module name: %s" % shown(name))
    return name


def _check_paths(addons_paths):
    """A comma-separated ``addons_path`` string is not a list of folders: refuse it
    rather than search each of its characters."""
    if isinstance(addons_paths, (str, bytes, os.PathLike)):
        raise TypeError("addons_paths is a list of folders, not %s (see odoo_addons_paths)"
                        % shown(addons_paths))
    return addons_paths


def _normalize(path):
    """An ``addons_path`` entry as Odoo's ``config._normalize`` makes it."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.path.expandvars(path))))


def odoo_addons_paths(odoo_root, addons_path=None, data_dir=None):
    """The folders Odoo 18 searches for a module, in its order (``odoo.addons.__path__``).

    ``odoo_root`` is the folder holding the ``odoo`` package (``/opt/odoo/18.0``,
    or ``dist-packages`` of the Debian package); ``addons_path`` the configured
    value (comma-separated string or list; empty: Odoo's default, ``odoo/addons``
    and a checkout's ``addons``); ``data_dir`` Odoo's, whose ``addons/18.0``
    Odoo searches when it exists.  Duplicates are dropped, the first kept.
    """
    own = os.path.join(_normalize(os.fspath(odoo_root)), "odoo", "addons")
    if isinstance(addons_path, str):
        addons_path = addons_path.split(",")
    entries = [os.fspath(entry).strip() for entry in addons_path or ()]
    entries = [entry for entry in entries if entry]
    if not entries:
        entries = [own, os.path.join(os.fspath(odoo_root), "addons")]
        entries = [entry for entry in entries if os.path.isdir(entry)]
    found = [own]
    if data_dir:
        found.append(os.path.join(_normalize(os.fspath(data_dir)), "addons", SERIES))
    found += [_normalize(os.fspath(entry)) for entry in entries]
    return [path for path in dict.fromkeys(found) if os.path.isdir(path)]


def find_addon(name, addons_paths):
    """The directory of module ``name`` in the first of ``addons_paths`` that has it
    (a ``<name>`` folder with a manifest), else None.  ``name`` is checked first."""
    check_name(name)
    for folder in _check_paths(addons_paths):
        candidate = os.path.join(os.fspath(folder), name)
        if any(os.path.isfile(os.path.join(candidate, manifest)) for manifest in MANIFEST_NAMES):
            return candidate
    return None


def _skipped(name):
    """Not code: hidden files and folders, compiled Python."""
    return name.startswith(".") or name.endswith((".pyc", ".pyo"))


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _link_digest(path):
    return hashlib.sha256(os.fsencode(os.readlink(path))).digest()


def _entries(top):
    """``(relative path as bytes, kind, sha256)`` of what the checksum covers.

    Regular files, and symlinks to files, are read (kind ``f``).  A symlink to
    a folder is not followed (no loops, no hashing a tree outside the module):
    its target's text stands for it (kind ``l``), as does a dangling link's.
    Sockets, FIFOs and devices are skipped, never opened (a FIFO would block).
    """
    pending = [(top, b"")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                if _skipped(entry.name):
                    continue
                rel = prefix + os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        pending.append((entry.path, rel + b"/"))
                elif entry.is_symlink():
                    if entry.is_file():
                        yield rel, _FILE, _file_digest(entry.path)
                    elif entry.is_dir() or not os.path.exists(entry.path):
                        yield rel, _LINK, _link_digest(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield rel, _FILE, _file_digest(entry.path)


def addon_checksum(path):
    """SHA-256 hex digest of the module directory ``path``: its files' relative paths
    and contents, independent of the order the filesystem lists them in.

    Skipped: ``__pycache__`` folders, ``*.pyc``/``*.pyo``, hidden files and
    folders (``.git``, ``.DS_Store``, editor swap files).  Each file is one
    record, ``path NUL kind sha256(content)``, sorted by path bytes (``/``
    separated): a path holds no NUL and the rest has a fixed length, so no two
    trees give the same stream ("ab" holding "c" and "a" holding "bc" do not).
    Timestamps, permissions and the directory's own location do not count, so
    the digest is the same on every run and machine.  An unreadable file
    raises :class:`OSError`.
    """
    digest = hashlib.sha256(FORMAT)
    for rel, kind, content in sorted(_entries(os.fspath(path))):
        digest.update(rel + b"\0" + kind + content)
    return digest.hexdigest()


def checksums(names, addons_paths, cache=None):
    """``{name: checksum or None}`` of the modules ``names`` (None: not on this server).

    Every name is checked before any file is read.  ``cache`` (a dict the caller
    keeps for one campaign and one ``addons_paths``) holds what was hashed
    already, missing modules included, and receives what is hashed now.
    """
    names = [check_name(name) for name in dict.fromkeys(names)]
    _check_paths(addons_paths)
    cache = {} if cache is None else cache
    for name in names:
        if name not in cache:
            path = find_addon(name, addons_paths)
            cache[name] = addon_checksum(path) if path else None
    return {name: cache[name] for name in names}


def _query(conn, query, args=()):
    """All rows of a read; a transaction this opened is ended (rolled back), so the
    connection holds no snapshot nor lock while an update runs on the database."""
    opened = not conn.autocommit and conn.info.transaction_status == TRANSACTION_STATUS_IDLE
    try:
        with conn.cursor() as cr:
            cr.execute(query, args)
            return cr.fetchall()
    finally:
        if opened:
            conn.rollback()


def installed(conn):
    """Sorted names of the modules whose code Odoo loads in the database behind ``conn``.

    ``installed`` and ``to upgrade`` as ``-u`` takes them, and ``to remove``:
    an update run loads such a module before uninstalling it, and a failed run
    makes it ``installed`` again, so the server must have its code too (passed
    to ``-u``, it is ignored by Odoo).  Sorted in Python, not by the database's
    collation.
    """
    rows = _query(conn, "SELECT name FROM ir_module_module WHERE state IN %s",
                  (INSTALLED_STATES,))
    return sorted({name for (name,) in rows})


def _table_exists(conn):
    return _query(conn, "SELECT to_regclass('saas_module_checksum') IS NOT NULL")[0][0]


def stored(conn):
    """``{name: checksum}`` saved by the last successful update of the database behind
    ``conn``; ``{}`` when it has no table yet (nothing is created: reading never writes,
    and works on a read-only connection)."""
    if not _table_exists(conn):
        return {}
    return dict(_query(conn, "SELECT name, checksum FROM saas_module_checksum"))


def store(conn, sums):
    """Make ``sums`` (``{name: checksum or None}``, as :func:`checksums` returns) the
    database's stored checksums: the table is created if missing, its rows replaced
    by the names that have a checksum; commit.  Names and checksums are checked
    first: a bad one raises :class:`ValueError` and writes nothing."""
    rows = sorted((check_name(name), value) for name, value in sums.items() if value is not None)
    for name, value in rows:
        if not isinstance(value, str) or not CHECKSUM_RE.fullmatch(value):
            raise ValueError("not a checksum for %s: %s" % (name, shown(value)))
    try:
        with conn.cursor() as cr:
            cr.execute(TABLE_DDL)
            # Two stores at once would both delete, then collide on insert.
            cr.execute("LOCK TABLE saas_module_checksum IN SHARE ROW EXCLUSIVE MODE")
            cr.execute("DELETE FROM saas_module_checksum")
            if rows:
                execute_values(cr, "INSERT INTO saas_module_checksum (name, checksum) VALUES %s",
                               rows)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def plan(installed_names, stored_sums, current_sums):
    """The :class:`UpdatePlan` of a database (pure: no I/O).

    For each installed module: ``missing`` when ``current_sums`` has no
    checksum for it (the server lacks it), ``changed`` when the stored
    checksum differs or there is none, otherwise unchanged.
    """
    changed, missing, unchanged = [], [], 0
    for name in sorted(set(installed_names)):
        current = current_sums.get(name)
        if current is None:
            missing.append(name)
        elif stored_sums.get(name) != current:
            changed.append(name)
        else:
            unchanged += 1
    return UpdatePlan(tuple(changed), tuple(missing), unchanged)


def changed_modules(conn, addons_paths, cache=None):
    """The :class:`UpdatePlan` of the database behind ``conn`` against the code in
    ``addons_paths``: three small queries, and files hashed only for modules not in
    ``cache`` yet (keep one dict per campaign).  A database listing an installed
    module under an invalid name raises :class:`ValueError`."""
    names = installed(conn)
    return plan(names, stored(conn), checksums(names, addons_paths, cache))
