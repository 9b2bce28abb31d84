import contextlib
import os
import sys
import time

from odoo import models, sql_db
from odoo.modules.registry import Registry
from odoo.tools import config

from ..engine import backup, filestore, pg

#: Stamps (seconds) a backup tries when a backup of the same second exists.
STAMP_TRIES = 3


class SaasServerMixin(models.AbstractModel):
    """Where this Odoo server keeps databases and files, for the engine.

    The engine receives plain values (connection keywords, paths) so it never
    needs Odoo; this mixin reads them from the server configuration.
    """

    _name = "saas.server.mixin"
    _description = "SaaS Server Access"
    def _saas_pg_params(self):
        """psycopg2 keywords of Odoo's own PostgreSQL role (odoo.conf db_*)."""
        params = {"host": config.get("db_host") or None, "port": config.get("db_port") or None,
                  "user": config.get("db_user") or None,
                  "password": config.get("db_password") or None}
        if config.get("db_sslmode"):
            params["sslmode"] = config["db_sslmode"]
        return {key: value for key, value in params.items() if value is not None}

    def _saas_db_owner(self):
        """The role Odoo connects with: it only lists databases that role owns."""
        return config.get("db_user") or None

    def _saas_filestore(self, database):
        """The filestore folder of ``database`` (same place as Odoo's config.filestore)."""
        return filestore.filestore_path(config["data_dir"], database)

    def _saas_backup_dir(self):
        """Where final backups go: odoo.conf ``saas_backup_dir``, else
        ``<data_dir>/saas_backups`` (see CONFIGURATION.md, "Termination and backups")."""
        return config.get("saas_backup_dir") or os.path.join(config["data_dir"], "saas_backups")

    def _saas_backup(self, database):
        """Verified backup of ``database`` (dump and filestore archive, with their sizes and
        checksums) into :meth:`_saas_backup_dir`, stamped with the database server's
        clock (UTC, now: not the transaction's start, which two backups may share).

        Stamps have a one-second resolution: a second backup of the same database
        within the same second waits for the next one (files are never overwritten).
        """
        for attempt in range(1, STAMP_TRIES + 1):
            self.env.cr.execute("""SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                  'YYYYMMDD"T"HH24MISS"Z"')""")
            stamp = self.env.cr.fetchone()[0]
            try:
                return backup.backup(self._saas_pg_params(), database,
                                     self._saas_filestore(database), self._saas_backup_dir(),
                                     stamp)
            except backup.BackupExistsError:
                if attempt == STAMP_TRIES:
                    raise
                time.sleep(1)
        return None

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
            Registry.delete(database)
            sql_db.close_db(database)
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
        folder = os.path.join(config["data_dir"], "saas_manager", "logs")
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
        rcfile = config.rcfile if config.rcfile and os.path.isfile(config.rcfile) else None
        options = {"addons-path": config.get("addons_path"), "data-dir": config.get("data_dir"),
                   "db_host": config.get("db_host"), "db_port": config.get("db_port"),
                   "db_user": config.get("db_user"), "db_sslmode": config.get("db_sslmode")}
        env = dict(os.environ)
        if config.get("db_password"):
            env["PGPASSWORD"] = config["db_password"]
        return sys.executable, sys.argv[0], rcfile, options, env

    def _saas_build_timeout(self):
        """odoo.conf ``saas_build_timeout``: seconds a template build may run (default 2 h)."""
        return int(config.get("saas_build_timeout") or 7200)

    def _saas_instance_url(self, host):
        """The public address of an instance: odoo.conf ``saas_instance_url_pattern``
        (``{host}`` is replaced), by default ``https://{host}``."""
        pattern = config.get("saas_instance_url_pattern") or "https://{host}"
        return pattern.replace("{host}", host)

    def _saas_param(self, key, default=""):
        return self.env["ir.config_parameter"].sudo().get_param(key, default) or default
