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
#: Schemes an instance's public URL may use, with the port each implies (left out of URLs).
PUBLIC_SCHEMES = {"https": 443, "http": 80}
MAX_PORT = 65535
DEFAULT_BUILD_TIMEOUT = 7200
#: Seconds a module update or app install of one instance may run.
DEFAULT_UPDATE_TIMEOUT = 1800


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
    #: How customers reach an instance: ``<public_scheme>://<host>[:<public_port>]``
    #: (port 0: the scheme's own, left out).
    public_scheme: str = "https"
    public_port: int = 0
    proxy: Proxy | None = None
    #: How child Odoo processes (template builds) run against this cluster: the
    #: configuration file they read (None: options on the command line only),
    #: their addons path, and how long a build, or an instance's update, may take
    #: (seconds).
    child_rcfile: str | None = None
    addons_path: str | None = None
    build_timeout: int = DEFAULT_BUILD_TIMEOUT
    update_timeout: int = DEFAULT_UPDATE_TIMEOUT

    def __post_init__(self):
        if not self.data_dir:
            raise ValueError("server %s: no data_dir" % self.name)
        if self.public_scheme not in PUBLIC_SCHEMES:
            raise ValueError("server %s: saas_public_scheme must be http or https, not %r"
                             % (self.name, self.public_scheme))
        if not 0 <= self.public_port <= MAX_PORT:
            raise ValueError("server %s: saas_public_port %r is not a TCP port"
                             % (self.name, self.public_port))
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

    def public_url(self, host):
        """The address customers use for ``host``: every public link to an instance or
        a template database is built here."""
        port = self.public_port
        if port in (0, PUBLIC_SCHEMES[self.public_scheme]):
            return "%s://%s" % (self.public_scheme, host)
        return "%s://%s:%d" % (self.public_scheme, host, port)

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
