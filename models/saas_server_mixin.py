import dataclasses
import os
import sys

from odoo import models, sql_db
from odoo.modules.registry import Registry

from ..engine import backup
from ..engine.server import Proxy


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
        ``<data_dir>/saas_backups`` (see CONFIGURATION.md, "Backups")."""
        return self._saas_server().backup_dir

    def _saas_backup(self, database):
        """Verified final backup of ``database`` (dump and filestore archive) into
        :meth:`_saas_backup_dir`, stamped with the database server's clock (UTC),
        the clock of ``create_date``."""
        stamp = self.env.cr.now().strftime("%Y%m%dT%H%M%SZ")
        server = self._saas_server()
        return backup.backup(server.pg_params(), database, server.filestore(database),
                             server.backup_dir, stamp)

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

    def _saas_build_timeout(self):
        """odoo.conf ``saas_build_timeout``: seconds a template build may run (default 2 h)."""
        return self._saas_server().build_timeout

    def _saas_instance_url(self, host):
        """The public address of an instance: odoo.conf ``saas_instance_url_pattern``
        (``{host}`` is replaced), by default ``https://{host}``."""
        return self._saas_server().instance_url(host)

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
