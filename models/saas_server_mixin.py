import os
import sys

from odoo import models
from odoo.tools import config

from ..engine import backup, filestore


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
        ``<data_dir>/saas_backups`` (see CONFIGURATION.md, "Backups")."""
        return config.get("saas_backup_dir") or os.path.join(config["data_dir"], "saas_backups")

    def _saas_backup(self, database):
        """Verified final backup of ``database`` (dump and filestore archive) into
        :meth:`_saas_backup_dir`, stamped with the database server's clock (UTC),
        the clock of ``create_date``."""
        stamp = self.env.cr.now().strftime("%Y%m%dT%H%M%SZ")
        return backup.backup(self._saas_pg_params(), database, self._saas_filestore(database),
                             self._saas_backup_dir(), stamp)

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
