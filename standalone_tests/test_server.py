"""engine.server: the Server value, its derived paths, and the PostgreSQL tool environment."""

import dataclasses
import os
import subprocess

import psycopg2
import pytest

from engine import server as server_mod
from engine.server import Proxy, Server

SECRET = "s3cret-Pa55"


def make(**values):
    base = {"name": "eu2", "data_dir": "/srv/eu2",
            "pg": {"host": "db.eu2", "port": "6432", "user": "odoo", "password": SECRET,
                   "sslmode": "require"},
            "odoo_url": "http://10.0.0.2:8069"}
    return Server(**{**base, **values})


def test_defaults_follow_the_data_dir():
    server = make()
    assert server.backup_dir == "/srv/eu2/saas_backups"
    assert server.log_dir == "/srv/eu2/saas_manager/logs"
    assert server.filestore("acme.example.com") == "/srv/eu2/filestore/acme.example.com"
    assert server.public_url("acme.example.com") == "https://acme.example.com"
    assert server.proxy is None
    explicit = make(backup_dir="/var/backups/eu2", public_scheme="http", public_port=8069)
    assert explicit.backup_dir == "/var/backups/eu2"
    assert explicit.public_url("a.b") == "http://a.b:8069"


def test_public_urls_leave_out_the_scheme_port_and_refuse_others():
    assert make(public_port=443).public_url("a.b") == "https://a.b"
    assert make(public_scheme="http", public_port=80).public_url("a.b") == "http://a.b"
    assert make(public_port=8443).public_url("a.b") == "https://a.b:8443"
    with pytest.raises(ValueError, match="must be http or https"):
        make(public_scheme="HTTPS")
    with pytest.raises(ValueError, match="not a TCP port"):
        make(public_port=65536)


def test_filestore_refuses_a_path_for_a_name():
    with pytest.raises(ValueError):
        make().filestore("../etc")


def test_a_data_dir_is_required():
    with pytest.raises(ValueError, match="no data_dir"):
        make(data_dir="")


def test_empty_connection_keywords_are_left_out_and_frozen():
    server = make(pg={"host": None, "port": "", "user": "odoo", "password": False})
    assert server.pg_params() == {"user": "odoo"}
    with pytest.raises(TypeError):
        server.pg["host"] = "elsewhere"
    params = server.pg_params()
    params["dbname"] = "x"  # a copy: the value is unchanged
    assert "dbname" not in server.pg
    with pytest.raises(dataclasses.FrozenInstanceError):
        server.data_dir = "/tmp"


def test_the_password_is_never_shown():
    server = make()
    assert SECRET not in repr(server)
    assert SECRET not in str(server)
    assert SECRET not in server.address
    assert server.address == "db.eu2:6432"
    assert make(pg={}).address == "local socket:5432"
    assert not [value for value in server.child_options().values() if value == SECRET]


def test_pg_env_sets_every_libpq_variable():
    env = make().pg_env(base={"PATH": "/bin", "PGHOST": "stale"})
    assert env == {"PATH": "/bin", "PGHOST": "db.eu2", "PGPORT": "6432", "PGUSER": "odoo",
                   "PGPASSWORD": SECRET, "PGSSLMODE": "require"}
    assert server_mod.pg_env({"host": "h"}, base={})["PGHOST"] == "h"


def test_child_options_and_env():
    server = make(addons_path="/opt/odoo/addons")
    assert server.child_options() == {
        "addons-path": "/opt/odoo/addons", "data-dir": "/srv/eu2", "db_host": "db.eu2",
        "db_port": "6432", "db_user": "odoo", "db_sslmode": "require"}
    assert server.child_env(base={"PATH": "/bin"}) == {"PATH": "/bin", "PGPASSWORD": SECRET}
    assert "PGPASSWORD" not in make(pg={}).child_env(base={})


def test_proxy_defaults():
    proxy = Proxy(folder="/etc/nginx/conf.d", upstream="127.0.0.1:8069",
                  websocket_upstream="127.0.0.1:8072")
    assert proxy.validate == "nginx -t"
    assert proxy.certificate_pattern.format(domain="erp.acme.com") == (
        "/etc/letsencrypt/live/erp.acme.com/fullchain.pem")
    assert make(proxy=proxy).proxy.folder == "/etc/nginx/conf.d"


def test_the_environment_reaches_a_real_cluster(pg_params):
    """pg_env() is what pg_dump and pg_restore get: psql connects with it alone."""
    server = make(pg=pg_params, data_dir="/tmp")
    done = subprocess.run(["psql", "-At", "-d", "postgres", "-c", "SELECT current_user"],
                          env=server.pg_env(base={"PATH": os.environ["PATH"]}),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    conn = psycopg2.connect(dbname="postgres", **server.pg)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT current_user")
            assert done.stdout.strip() == cr.fetchone()[0]
    finally:
        conn.close()
