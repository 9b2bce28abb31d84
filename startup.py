"""What saas_manager does in every server process, loaded server-wide.

Four things: suspended hosts get their page, hosts under maintenance (an
update running) get theirs, the cron workers are woken right after the
start, and the threaded cron loop is made safe.

A request whose host has no database (Odoo does not list a suspended
database, which refuses connections) is answered with that host's
suspension page when the manager has written one (``engine.suspension``),
with status 503, instead of Odoo's database selector.  This is a wrapper of
``Request._serve_nodb``, Odoo's own path for requests without a database:
it costs one failed ``open()`` for those requests and nothing for the rest.
A database under maintenance (``engine.maintenance``) still accepts
connections, which the updating process uses: ``Request._serve_db`` is
wrapped too, and costs one failed ``open()`` per request served with a
database.

The cron workers are woken right after the start, so interrupted work
resumes: Odoo's cron workers sleep up to 60 to 70 s before their first look at the
databases, so a provisioning or build interrupted by a restart would wait
that long.  Loaded as a server-wide module (``server_wide_modules =
base,web,saas_manager``, see CONFIGURATION.md), saas_manager's ``post_load``
runs once in the main process at start: a few seconds later, once the
workers listen, it sends the ``cron_trigger`` notification Odoo itself uses
(``ir.cron._trigger``), and the workers run whatever is due: the provisioning
and build crons of interrupted work are due (their trigger or next call is
in the past).  Without the server-wide setting nothing breaks; the first
resume then waits for the workers' first sleep.

It also makes Odoo's threaded cron loop safe with many databases.  In
threaded mode each cron thread walks the live registry map
(``for db_name, registry in registries.d.items()``, unlocked) and runs each
database's jobs *inside* that loop; a request to any other database meanwhile
reorders the map (an LRU), and opening, renaming or dropping databases adds
and removes entries.  The loop then dies with "OrderedDict mutated during
iteration" and that cron thread never runs again (odoo/odoo#79823, still in
18.0).  saas_manager's operations run for seconds inside that loop while
clients are served, so the thread would die within minutes: the map is
given an ``items()`` that returns a snapshot.  Prefork servers (cron workers
are processes with a loop of their own) do not need it and are left alone.
"""

import collections
import logging
import threading

from odoo import http, sql_db
from odoo.modules.registry import Registry
from odoo.tools import config

from .engine import maintenance, suspension
from .models.saas_settings import prefork, runs_crons

_logger = logging.getLogger(__name__)

#: Seconds after the start: the second catches workers slow to start listening.
WAKE_AFTER = (3, 10)
_scheduled = []


class SnapshotItems(collections.OrderedDict):
    """An OrderedDict whose ``items()`` is a list taken at once (the copy is made in C,
    without another thread running), so iterating it never sees a mutation."""

    def items(self):
        return list(super().items())


def protect_registry_iteration():
    """Give the registry map a snapshot ``items()`` (see the module docstring)."""
    registries = Registry.registries
    with registries._lock:
        if not isinstance(registries.d, SnapshotItems):
            registries.d = SnapshotItems(registries.d)


def page_response(page, status, headers=()):
    """A suspension or maintenance page as Odoo's answer: never cached."""
    return http.Response(page, status=status, headers=[
        ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"), *headers])


def serve_suspension_pages():
    """Wrap ``Request._serve_nodb`` once (see the module docstring)."""
    serve_nodb = http.Request._serve_nodb
    if getattr(serve_nodb, "saas_suspension_pages", False):
        return

    def _serve_nodb(request):
        host = request.httprequest.host.partition(":")[0]
        page = suspension.read(config["data_dir"], host)
        if page is None:
            return serve_nodb(request)
        return page_response(page, suspension.STATUS)

    _serve_nodb.saas_suspension_pages = True
    http.Request._serve_nodb = _serve_nodb


def serve_maintenance_pages():
    """Wrap ``Request._serve_db`` once: a request served by a database under maintenance
    (``engine.maintenance``) gets its page, unless it carries the update's pass."""
    serve_db = http.Request._serve_db
    if getattr(serve_db, "saas_maintenance_pages", False):
        return

    def _serve_db(request):
        page = maintenance.blocks(config["data_dir"], request.db,
                                  request.httprequest.headers.get(maintenance.PASS_HEADER))
        if page is None:
            return serve_db(request)
        return page_response(page, maintenance.STATUS, [("Retry-After", "60")])

    _serve_db.saas_maintenance_pages = True
    http.Request._serve_db = _serve_db


def post_load():
    serve_suspension_pages()
    serve_maintenance_pages()
    if _scheduled or not runs_crons():
        return
    if not prefork():
        protect_registry_iteration()
    for delay in WAKE_AFTER:
        timer = threading.Timer(delay, wake_cron_workers)
        timer.daemon = True
        timer.start()
        _scheduled.append(timer)


def wake_cron_workers():
    try:
        with sql_db.db_connect("postgres").cursor() as cr:
            cr.execute("NOTIFY cron_trigger")
    except Exception as exc:  # a failed wake-up only delays the crons to their own time
        _logger.info("Could not wake the cron workers: %s", exc)
    finally:
        if prefork():
            # The prefork master emptied its pool before forking workers: leave no
            # connection there for later-forked workers to inherit and share.  (In
            # threaded mode the cron threads listen on a connection of that same
            # pool: closing it would end them.)
            sql_db.close_db("postgres")
