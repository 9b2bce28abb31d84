"""Where databases live: one PostgreSQL cluster and what goes with it, as a value.

A :class:`Server` says how to reach a cluster (psycopg2 keywords), which role
owns the databases, where their filestores, backups and build logs are, which
Odoo serves them, how instances are addressed and which reverse proxy files
to write.  The manager builds it from odoo.conf (``models/saas_server.py``)
and hands it, or its :attr:`Server.pg`, to every engine call that needs a
location: nothing below reads the server configuration itself.

The password is part of :attr:`Server.pg` but never of the value's ``repr``
(tracebacks and logs show it), nor of :attr:`Server.address`.
"""

import os
from dataclasses import dataclass, field
from types import MappingProxyType

from . import filestore

#: libpq environment variables for the psycopg2 keywords they stand for.
PG_ENV_VARS = (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
               ("password", "PGPASSWORD"), ("sslmode", "PGSSLMODE"))
DEFAULT_INSTANCE_URL_PATTERN = "https://{host}"
DEFAULT_BUILD_TIMEOUT = 7200


def pg_env(params, base=None):
    """The environment for PostgreSQL's client programs (pg_dump, pg_restore...):
    ``base`` (default: this process's environment) plus libpq's ``PG*`` variables
    from the psycopg2 keywords ``params``."""
    env = dict(os.environ if base is None else base)
    for key, var in PG_ENV_VARS:
        if params.get(key):
            env[var] = str(params[key])
    return env


@dataclass(frozen=True)
class Proxy:
    """The nginx files written for a server's instances, and the commands that
    check and load them.  ``*_pattern`` take ``{domain}`` (a customer's own domain)."""

    folder: str
    upstream: str
    websocket_upstream: str
    certificate: str = ""
    key: str = ""
    certificate_pattern: str = "/etc/letsencrypt/live/{domain}/fullchain.pem"
    key_pattern: str = "/etc/letsencrypt/live/{domain}/privkey.pem"
    validate: str = "nginx -t"
    reload: str = "nginx -s reload"


@dataclass(frozen=True)
class Server:
    """One PostgreSQL cluster, the files of its databases and the Odoo serving them."""

    name: str
    pg: MappingProxyType = field(repr=False, hash=False)
    data_dir: str
    odoo_url: str
    db_owner: str | None = None
    backup_dir: str = ""
    log_dir: str = ""
    instance_url_pattern: str = DEFAULT_INSTANCE_URL_PATTERN
    proxy: Proxy | None = None
    #: How child Odoo processes (template builds) run against this cluster: the
    #: configuration file they read (None: options on the command line only),
    #: their addons path, and how long a build may take (seconds).
    child_rcfile: str | None = None
    addons_path: str | None = None
    build_timeout: int = DEFAULT_BUILD_TIMEOUT

    def __post_init__(self):
        if not self.data_dir:
            raise ValueError("server %s: no data_dir" % self.name)
        params = {key: value for key, value in dict(self.pg).items()
                  if value not in (None, "", False)}
        object.__setattr__(self, "pg", MappingProxyType(params))
        if not self.backup_dir:
            object.__setattr__(self, "backup_dir", os.path.join(self.data_dir, "saas_backups"))
        if not self.log_dir:
            object.__setattr__(self, "log_dir",
                               os.path.join(self.data_dir, "saas_manager", "logs"))

    def pg_params(self):
        """A fresh dict of the psycopg2 keywords (callers may add to it)."""
        return dict(self.pg)

    def pg_env(self, base=None):
        """The environment for PostgreSQL's client programs on this cluster."""
        return pg_env(self.pg, base)

    def filestore(self, database):
        """The filestore of ``database``: ``<data_dir>/filestore/<database>``, as Odoo's
        ``config.filestore``."""
        return filestore.filestore_path(self.data_dir, database)

    def instance_url(self, host):
        """The public address of an instance (``{host}`` replaced in the pattern)."""
        return self.instance_url_pattern.replace("{host}", host)

    @property
    def address(self):
        """Where the cluster is, for display: ``host:port`` (never the password)."""
        host = self.pg.get("host") or "local socket"
        return "%s:%s" % (host, self.pg.get("port") or 5432)

    def child_options(self):
        """Command-line options that point a child Odoo at this cluster (no password:
        a command line is readable by every local user; see :meth:`child_env`)."""
        return {"addons-path": self.addons_path, "data-dir": self.data_dir,
                "db_host": self.pg.get("host"), "db_port": self.pg.get("port"),
                "db_user": self.pg.get("user"), "db_sslmode": self.pg.get("sslmode")}

    def child_env(self, base=None):
        """The environment of a child Odoo: the database password as ``PGPASSWORD``."""
        env = dict(os.environ if base is None else base)
        if self.pg.get("password"):
            env["PGPASSWORD"] = str(self.pg["password"])
        return env
