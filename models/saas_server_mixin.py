import contextlib
import dataclasses
import os
import sys
import time
from datetime import datetime

import psycopg2

import odoo
from odoo import models, sql_db
from odoo.exceptions import UserError
from odoo.modules.registry import Registry

from ..engine import backup, pg
from ..engine import login as login_tokens
from ..engine import modules as engine_modules
from ..engine.server import Proxy

#: Stamps (seconds) a backup tries when a backup of the same second exists.
STAMP_TRIES = 3
#: The backup files' stamp (UTC, the database server's clock).
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class SaasServerMixin(models.AbstractModel):
    """Where a record's databases and files are, for the engine.

    The engine receives plain values (a :class:`~..engine.server.Server`,
    connection keywords, paths) so it never needs Odoo.  They come from the
    record's ``saas.server`` (``server_id``) when the model has one, else from
    the local server; the server record says which odoo.conf section to read.
    """

    _name = "saas.server.mixin"
    _description = "SaaS Server Access"

    def _saas_server(self):
        """The engine Server of these records (all on one server), or the local one."""
        servers = self.sudo().mapped("server_id") if "server_id" in self._fields else None
        if servers and len(servers) > 1:
            raise ValueError("%s: records on several servers (%s)" % (
                self._name, ", ".join(servers.mapped("code"))))
        return (servers or self.env["saas.server"].sudo()._local())._server()

    def _saas_pg_params(self):
        """psycopg2 keywords of the server's PostgreSQL role (odoo.conf db_*)."""
        return self._saas_server().pg_params()

    def _saas_db_owner(self):
        """The role Odoo connects with: it only lists databases that role owns."""
        return self._saas_server().db_owner

    def _saas_filestore(self, database):
        """The filestore folder of ``database`` (same place as Odoo's config.filestore)."""
        return self._saas_server().filestore(database)

    def _saas_backup_dir(self):
        """Where final backups go: odoo.conf ``saas_backup_dir``, else
        ``<data_dir>/saas_backups`` (see CONFIGURATION.md, "Termination and backups")."""
        return self._saas_server().backup_dir

    def _saas_backup(self, database, operation=None):
        """Verified backup of ``database`` (dump and filestore archive, with their sizes and
        checksums) into :meth:`_saas_backup_dir`, stamped with the database server's
        clock (UTC, now: not the transaction's start, which two backups may share).

        Stamps have a one-second resolution: a second backup of the same database
        within the same second waits for the next one (files are never overwritten).
        The stamp is recorded on ``operation`` (committed) before the dump starts, so
        that the files of a worker killed mid-dump are found and removed when the
        operation resumes (:meth:`_saas_remove_partial_backup`).
        """
        for attempt in range(1, STAMP_TRIES + 1):
            self.env.cr.execute("""SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                  'YYYYMMDD"T"HH24MISS"Z"')""")
            stamp = self.env.cr.fetchone()[0]
            server = self._saas_server()
            if operation:
                operation.params = dict(operation.params or {}, backup_stamp=stamp,
                                        backup_database=database)
                operation._commit()
            try:
                return backup.backup(server.pg_params(), database, server.filestore(database),
                                     server.backup_dir, stamp)
            except backup.BackupExistsError:
                if attempt == STAMP_TRIES:
                    raise
                time.sleep(1)
        return None

    def _saas_remove_partial_backup(self, operation):
        """Remove what an earlier, killed attempt of ``operation`` left of its backup: the
        files of the stamp it recorded, unless a backup record holds them."""
        params = operation.params or {}
        stamp, database = params.get("backup_stamp"), params.get("backup_database")
        if not stamp:
            return []
        recorded = self.env["saas.backup"].sudo().search_count(
            [("operation_id", "=", operation.id),
             ("stamp", "=", datetime.strptime(stamp, STAMP_FORMAT))])
        if recorded:
            return []
        return backup.remove_partial(self._saas_server().backup_dir, database, stamp)

    @contextlib.contextmanager
    def _saas_backup_window(self, database, restore=None):
        """While the block runs, ``database`` is hidden from Odoo and open to ``pg_dump``.

        Hidden: flagged ``IS_TEMPLATE`` (Odoo never lists templates, so it
        serves nothing of it) while it accepts connections (pg_dump's); this
        process's registry and pooled connections are released and the
        database's sessions ended (one that cannot be ended fails here).  When
        the block ends, done or failed, the database gets its flags back if it
        still exists (the block may have dropped it): those it had, or
        ``restore`` = ``(connections allowed, is a template)`` when the caller
        knows them (a database a killed worker left hidden reads as hidden).
        """
        params = self._saas_pg_params()
        with pg.maintenance(params) as conn:
            if restore is None:
                restore = (pg.connections_allowed(conn, database), pg.is_template(conn, database))
            pg.mark_template(conn, database, True)
            pg.allow_connections(conn, database, True)
        try:
            self._saas_release(database)
            with pg.maintenance(params) as conn:
                pg.terminate_sessions(conn, database)
            yield
        finally:
            with pg.maintenance(params) as conn:
                if pg.exists(conn, database):
                    pg.allow_connections(conn, database, restore[0])
                    pg.mark_template(conn, database, restore[1])

    def _saas_log_dir(self):
        """Where the logs of child Odoo processes (template builds) are kept."""
        folder = self._saas_server().log_dir
        os.makedirs(folder, exist_ok=True)
        return folder

    def _saas_odoo_child(self):
        """How to run another Odoo like this one: ``(python, launcher, rcfile, options, env)``.

        The server's own settings are repeated as command-line options, so that
        a server started with options on its command line only (containers
        often have no config file) gives them to the child too.  The database
        password goes through the environment, not the command line (which any
        local user can read).
        """
        server = self._saas_server()
        return (sys.executable, sys.argv[0], server.child_rcfile, server.child_options(),
                server.child_env())

    def _saas_addons_paths(self):
        """The folders the server's child Odoo searches for modules, in Odoo's order
        (``engine.modules.odoo_addons_paths``)."""
        server = self._saas_server()
        root = os.path.dirname(os.path.dirname(os.path.abspath(odoo.__file__)))
        paths = engine_modules.odoo_addons_paths(root, server.addons_path, server.data_dir)
        # Odoo also searches the odoo/addons folders of sys.path (pip-installed addons),
        # after the others; the child runs with this Python, so with this sys.path.
        known = {os.path.realpath(path) for path in paths}
        for entry in dict.fromkeys(filter(None, sys.path)):
            folder = os.path.realpath(os.path.join(entry, "odoo", "addons"))
            if folder not in known and os.path.isdir(folder):
                paths.append(folder)
                known.add(folder)
        return paths

    def _saas_store_checksums(self, database, cache=None, only=None):
        """Record in ``database`` the code checksums of its installed modules, after a
        successful build or update: the next update campaign skips what did not change.
        With ``only`` (module names), only theirs are replaced; the others are kept."""
        conn = psycopg2.connect(dbname=database, **self._saas_pg_params())
        try:
            installed = engine_modules.installed(conn)
            sums = engine_modules.checksums(installed if only is None else only,
                                            self._saas_addons_paths(), cache)
            if only is not None:
                kept = engine_modules.stored(conn)
                sums = {name: kept.get(name) for name in installed} | sums
            engine_modules.store(conn, sums)
        finally:
            conn.close()

    def _saas_build_timeout(self):
        """odoo.conf ``saas_build_timeout``: seconds a template build may run (default 2 h)."""
        return self._saas_server().build_timeout

    def _saas_public_url(self, host):
        """The address customers use for ``host`` on this record's server: odoo.conf
        ``saas_public_scheme`` (default https) and ``saas_public_port`` (default: the
        scheme's own), network facts the database cannot change."""
        return self._saas_server().public_url(host)

    def _saas_issue_login(self, database, login):
        """A one-click login token opening ``database`` as its active user ``login``
        (``engine.login``; the link's life is ``saas.login_link_seconds``).  Private: the
        caller decides who may have it."""
        seconds = self.env["saas.settings"]._get("saas.login_link_seconds")
        conn = psycopg2.connect(dbname=database, **self._saas_pg_params())
        try:
            return login_tokens.issue(conn, login, seconds)
        except ValueError as exc:
            raise UserError(self.env._(
                "The administrator %(login)s is no longer an active user of %(db)s.",
                login=login, db=database)) from exc
        finally:
            conn.close()

    def _saas_odoo_url(self):
        """The Odoo server that serves the client databases (odoo.conf ``saas_odoo_url``;
        default: this one).  From the server configuration, not the database: the
        customer's new password is sent there."""
        return self._saas_server().odoo_url

    def _saas_proxy_settings(self):
        """The reverse proxy's files and commands, from odoo.conf, never from the
        database: they name commands to run and files to write on the server.  A
        ``folder`` of ``""`` means no proxy files are written."""
        proxy = self._saas_server().proxy
        if proxy is None:
            return {item.name: "" for item in dataclasses.fields(Proxy)}
        return dataclasses.asdict(proxy)

    @staticmethod
    def _saas_release(database):
        """Forget this process's registry and pooled connections of ``database``, before it
        is blocked, dumped or dropped: our own connections close cleanly instead of being
        killed, and no stale registry serves it afterwards."""
        Registry.delete(database)
        sql_db.close_db(database)
