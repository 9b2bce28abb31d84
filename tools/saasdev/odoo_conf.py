"""The odoo.conf of this checkout.

Written to ``.local/odoo.conf`` on every run from what the tool found (Odoo,
PostgreSQL, ports) while keeping the secrets it generated the first time
(``admin_passwd``, the saas_manager encryption key), so databases made by an
earlier run stay readable.
"""

import base64
import configparser
import os
import secrets

#: dbfilter per routing mode (see CONFIGURATION.md, "Routing").
DBFILTERS = {"host": "^%h$", "subdomain": "^%d$"}
#: Start of the off-site store's option names (see CONFIGURATION.md, "Off-site copies").
OFFSITE_PREFIX = "saas_s3_"


def _read(path):
    parser = configparser.ConfigParser(interpolation=None)
    if path.is_file():
        parser.read(path, encoding="utf-8")
    if not parser.has_section("options"):
        parser.add_section("options")
    return parser


def routing_of(path):
    """The routing mode whose dbfilter the odoo.conf at ``path`` has (host for any other)."""
    dbfilter = _read(path).get("options", "dbfilter", fallback="")
    return "subdomain" if dbfilter == DBFILTERS["subdomain"] else "host"


def new_fernet_key():
    """A Fernet key (32 random bytes, urlsafe base64) without importing cryptography."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def write_conf(
    path, *, odoo, addons_dir, data_dir, pg, http_port, routing="host", workers=0, dbfilter=None,
    encryption_key=True, offsite=None, extra=None,
):
    """Write the config and return it as a dict of options (``extra``: more options).

    ``encryption_key=False`` leaves ``saas_manager_key`` out: the Odoo tests
    run without one, as they must on any server, and set their own.
    ``offsite``: the ``saas_s3_*`` options of the off-site store; without
    them, those of an earlier run (a server gone since) are removed.
    """
    parser = _read(path)
    opts = parser["options"]
    for name in [name for name in opts if name.startswith(OFFSITE_PREFIX)]:
        parser.remove_option("options", name)
    opts.setdefault("admin_passwd", secrets.token_urlsafe(24))
    if encryption_key:
        opts.setdefault("saas_manager_key", new_fernet_key())
    else:
        parser.remove_option("options", "saas_manager_key")
    addons = [str(p) for p in odoo.addons_paths] + [str(addons_dir)]
    opts.update(
        {
            "addons_path": ",".join(addons),
            "data_dir": str(data_dir),
            "db_host": pg.host,
            "db_port": str(pg.port),
            "db_user": pg.user,
            "db_password": pg.password or "False",
            "list_db": "False",
            "proxy_mode": "True",
            "dbfilter": dbfilter or DBFILTERS[routing],
            "http_interface": "127.0.0.1",
            "http_port": str(http_port),
            "gevent_port": str(http_port + 3),
            "workers": str(workers),
            "max_cron_threads": "1",
            "without_demo": "all",
            "log_level": "info",
            # Loaded in every database: the one-click login page of the client databases,
            # and the wake-up of the cron workers at start (see CONFIGURATION.md).
            "server_wide_modules": "base,web,saas_manager",
            **(offsite or {}),
            **(extra or {}),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)
    return dict(opts)
