"""nginx configuration for the instances: render, write, validate, reload.

One wildcard server serves every ``<subdomain>.<base domain>`` (one wildcard
certificate, one DNS record ``*.base-domain``); Odoo's ``dbfilter`` then picks
the database from the host.  A customer's own domain gets a server block of
its own that forwards to Odoo with the instance's host, so the same dbfilter
finds the same database.  Files are written atomically and validated with
nginx before the reload; a configuration nginx rejects is rolled back.
"""

import os
import re
import shlex
import subprocess
import tempfile

from .naming import NamingError, check_domain
from .server import MAX_PORT

WILDCARD_FILE = "saas_manager.conf"
INSTANCE_FILE = "saas_manager-%s.conf"

_PROXY_COMMON = """\
    proxy_read_timeout 720s;
    proxy_connect_timeout 720s;
    proxy_send_timeout 720s;
    client_max_body_size 128m;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Real-IP $remote_addr;
    gzip on;
    gzip_types text/css text/plain application/json application/javascript;
"""

_LOCATIONS = """\
    location /websocket {{
        proxy_pass http://saas_odoo_websocket;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $saas_connection_upgrade;
        proxy_set_header Host {host};
        proxy_set_header X-Forwarded-Host {host};
    }}
    location / {{
        proxy_pass http://saas_odoo;
        proxy_redirect off;
        proxy_set_header Host {host};
        proxy_set_header X-Forwarded-Host {host};
    }}
"""


class ProxyError(Exception):
    """nginx refused the configuration or the reload failed."""


def _check_upstream(value):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:[0-9]+", value):
        raise ValueError("invalid upstream address %r (host:port)" % value)
    return value


def _upstream_servers(value):
    """The ``host:port`` items of a comma-separated list, each one checked."""
    if not isinstance(value, str):
        raise ValueError("invalid upstream address %r (host:port)" % (value,))
    return [_check_upstream(item.strip()) for item in value.split(",")]


#: What several upstream servers are chosen by: the instance's host, which every server
#: block sets (:data:`SHARD_BY_HOST` for the wildcard, the literal host for a custom
#: domain), so that every address of one database reaches the same Odoo.
SHARD_VARIABLE = "$saas_shard"
#: The wildcard server's shard key: the request's host without ``www.`` (Odoo's
#: ``dbfilter`` strips it, so both name one database).
SHARD_BY_HOST = """\
map $host $saas_shard_host {
    default $host;
    "~^www\\.(?<saas_shard_rest>.+)$" $saas_shard_rest;
}
"""


def _upstream(name, servers):
    """An upstream block; several servers are chosen by the instance's host
    (``hash $saas_shard``).

    Not ``consistent``: nginx's consistent hash places each server by its own
    address, so two upstreams with different ports would send one host to
    different shards.  The plain hash depends on the key and the number of
    servers only: the i-th server of both upstreams gets the same hosts.
    """
    return "upstream %s {\n%s%s}\n" % (
        name, "    hash %s;\n" % SHARD_VARIABLE if len(servers) > 1 else "",
        "".join("    server %s;\n" % server for server in servers))


def render_upstreams(upstream, websocket_upstream):
    """The ``saas_odoo`` and ``saas_odoo_websocket`` blocks (lists: see render_wildcard)."""
    http, websocket = _upstream_servers(upstream), _upstream_servers(websocket_upstream)
    if len(http) != len(websocket):
        raise ValueError(
            "the HTTP upstream lists %d servers and the websocket upstream %d: they must "
            "pair one to one (the i-th websocket server is the gevent port of the i-th "
            "HTTP server), so that a client's HTTP and websocket requests reach the same "
            "Odoo" % (len(http), len(websocket)))
    return _upstream("saas_odoo", http) + _upstream("saas_odoo_websocket", websocket)


def _check_path(value):
    if not isinstance(value, str) or not value or re.search(r"[\s\x00-\x1f\x7f;{}'\"$]", value):
        raise ValueError("invalid file path for nginx: %r" % value)
    return value


def _proxied(host, shard):
    """What a server block that forwards to Odoo holds: the shard key, the proxy settings
    and the locations."""
    return "    set %s %s;\n%s%s" % (SHARD_VARIABLE, shard, _PROXY_COMMON,
                                  _LOCATIONS.format(host=host))


def _server(server_name, host, certificate, key, *, shard, scheme="https", port=0):
    """The server blocks of ``server_name``, as customers reach it (``scheme`` and
    ``port``: odoo.conf ``saas_public_scheme`` / ``saas_public_port``, 0 = the scheme's
    own): HTTPS with a redirect from port 80, or plain HTTP (a closed network, a test
    machine) without a certificate.  ``shard``: the upstream key (see ``_upstream``)."""
    if scheme not in ("http", "https") or not isinstance(port, int) or not 0 <= port <= MAX_PORT \
            or (scheme, port) == ("https", 80):
        raise ValueError("invalid public scheme or port %r, %r" % (scheme, port))
    if scheme == "http":
        return "".join(["server {\n", "    listen %d;\n    server_name %s;\n" % (
            port or 80, server_name), _proxied(host, shard), "}\n"])
    return "".join([
        "server {\n",
        "    listen 80;\n    server_name %s;\n" % server_name,
        "    return 301 https://$host%s$request_uri;\n}\n" % (
            ":%d" % port if port not in (0, 443) else ""),
        "server {\n",
        "    listen %d ssl;\n    server_name %s;\n" % (port or 443, server_name),
        "    ssl_certificate %s;\n    ssl_certificate_key %s;\n" % (
            _check_path(certificate), _check_path(key)),
        _proxied(host, shard),
        "}\n",
    ])


def render_wildcard(base_domain, upstream, websocket_upstream, certificate, key, *,
                    scheme="https", port=0):
    """The shared file: upstreams and the ``*.base_domain`` server.

    ``upstream`` and ``websocket_upstream`` are ``host:port`` or comma-separated
    lists of the same length (one Odoo per item: shards by host); ``scheme`` and
    ``port`` as customers reach the server (see :func:`_server`).
    """
    try:
        check_domain(base_domain, "base domain")
    except NamingError as exc:
        raise ValueError("invalid base domain %r" % (base_domain,)) from exc
    return "".join([
        "# Generated by saas_manager: do not edit, changes are overwritten.\n",
        render_upstreams(upstream, websocket_upstream),
        "map $http_upgrade $saas_connection_upgrade {\n    default upgrade;\n    '' close;\n}\n",
        SHARD_BY_HOST,
        _server("*.%s" % base_domain, "$host", certificate, key, shard="$saas_shard_host",
                scheme=scheme, port=port),
    ])


def render_custom_domain(domain, instance_host, certificate, key, *, scheme="https",
                         port=0):
    """A customer's own domain, forwarded to Odoo as the instance's host."""
    for name in (domain, instance_host):
        try:
            check_domain(name)
        except NamingError as exc:
            raise ValueError("invalid domain %r" % (name,)) from exc
    return "# Generated by saas_manager for %s: do not edit.\n%s" % (
        instance_host, _server(domain, instance_host, certificate, key, shard=instance_host,
                               scheme=scheme, port=port))


def write_atomic(path, text):
    """Replace ``path`` with ``text``; return the previous content (``None`` if new)."""
    previous = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            previous = handle.read()
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".saas-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return previous


def restore(path, previous, reload_command=""):
    """Undo :func:`write_atomic`: put ``previous`` back (or remove a new file), reload."""
    if previous is None:
        if os.path.exists(path):
            os.remove(path)
    else:
        write_atomic(path, previous)
    run_command(reload_command, "nginx reload")


def run_command(command, what, timeout=60):
    """Run a configured shell-free command line; raise :class:`ProxyError` on failure."""
    if not command:
        return ""
    try:
        proc = subprocess.run(shlex.split(command), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProxyError("%s (%s) failed: %s" % (what, command, exc)) from exc
    if proc.returncode:
        raise ProxyError("%s (%s) failed: %s" % (
            what, command, (proc.stderr or proc.stdout).strip()[-500:]))
    return proc.stderr + proc.stdout


def apply(path, text, validate_command, reload_command):
    """Write ``text`` to ``path``, validate, reload; roll back when nginx refuses it.

    Returns the previous content (``None`` for a new file), for :func:`restore`.
    """
    previous = write_atomic(path, text)
    try:
        run_command(validate_command, "nginx validation")
        run_command(reload_command, "nginx reload")
    except ProxyError:
        restore(path, previous)  # no reload: nginx still runs the previous files
        raise
    return previous
