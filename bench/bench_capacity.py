"""Capacity benchmark: N client databases served by prefork Odoo, memory and latency.

What the product does at scale, measured in one run on this machine:

* a template database with base+mail (``odoo -i base,mail --stop-after-init
  --without-demo=all``, through the same launcher as the other benches; reused
  when an earlier ``--keep`` run left it), then N clones of it made the way the
  product makes them (``engine.pg.clone``, WAL_LOG strategy, its filestore
  hardlink-copied by ``engine.filestore.clone_tree``), each named like a host
  (``capbench-c0001.localhost``);
* ONE Odoo in prefork mode serving them all (or K sharded by host:
  ``--shards``, below): ``--workers 2``, ``--max-cron-threads 0`` (no cron
  worker: it would visit, and load, every database on its own; this measures
  the serving side only), ``--db-filter ^%h$``, bound to 127.0.0.1, with
  Odoo's default memory limits
  (``--limit-memory-soft`` 2048 MiB, ``--limit-memory-hard`` 2560 MiB) unless
  the flags say otherwise;
* phase **cold**: ``GET /web/login`` once per client (``Host`` header = the
  client's host): the first request of a database (its registry is loaded);
* phase **warm**: the same again;
* phase **login**: per client, ``POST /web/login`` with the template
  administrator's credentials and the CSRF token of the form, then
  ``GET /odoo``: the web client's HTML page only, NOT its asset bundles (a
  browser caches those; they are the same files for every client).

Requests go with a concurrency of 3 (``--concurrency``), as a reverse proxy in
front of 2 workers would send them.  After each phase it prints the total PSS
(``/proc/<pid>/smaps_rollup``: shared pages count once) of Odoo's processes
(master, HTTP workers, websocket process) and PostgreSQL's (postmaster and
backends), the per-client marginal memory against the idle server (before any
client request), PostgreSQL's client connections by role and state, and per
HTTP worker (asked through a tiny server-wide probe module written for the
run) the registries it holds against the LRU's capacity, which Odoo 18 sizes
``int(limit_memory_soft / 15 MiB)`` (``odoo/modules/registry.py``), and its
pooled connections against ``db_maxconn``.  Odoo's log is scanned per phase
for registry loads, memory-limit recycling and connection errors.

What the connection wall looks like: each Odoo process keeps up to
``db_maxconn`` connections in its pool (one per database it served lately), so
``workers x db_maxconn`` (+ the websocket process) must stay below PostgreSQL's
``max_connections`` minus its superuser slots (./dev's cluster keeps initdb's
100 and 3).  Past that, Odoo's ``db_list()`` cannot connect, swallows the
error and serves the request without a database: ``/web/login`` answers
``303 -> /web/database/selector`` (counted here as errors), with nothing in
Odoo's log; PostgreSQL's log says "remaining connection slots are reserved".
A "warm" pass is warm only for the worker that loaded the registry: each
prefork worker loads its own, so repeat it (``--phases cold,warm,warm``).

``--shards K`` shards by host, as ``saas_proxy_upstream`` lists do in
production: K such Odoo servers (each ``--workers W``, its own HTTP and
gevent port, the same odoo.conf otherwise) behind nginx, whose upstreams are
the product's own (``engine.proxy.render_upstreams``, keyed by ``Host``), plain
HTTP on 127.0.0.1, run in the foreground from ``.local/capbench_nginx`` (its
conf, pid, logs and temp files).  Every request goes to nginx with the
client's ``Host``, so a client always reaches the same server and only that
server's W workers load its registry, instead of every worker of one server.
Odoo's memory is then the PSS of all K process trees (nginx's is printed
apart, and counted in the total); the probe, the log scan and the worker
lines cover every shard (``(shard i)``); PostgreSQL's connections are the
total.  K = 1 (the default) is one Odoo and no nginx, as above.

Ratios against the seed's sizing claims (GB = 10^9 bytes, scaled linearly to
N): 24 GB per 100 clients ("per-client Odoo") and 200 GB per 100 clients
(Docker per client).  Goal checked: 1,000 clients, total <= 12 GiB, warm p95
<= 0.5 s.

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_capacity.py                     # N = 100 clients
    python3 bench/bench_capacity.py --clients 1000      # the big run (clones ~0.3-1 s each)
    python3 bench/bench_capacity.py --clients 1000 --db-maxconn 16
    python3 bench/bench_capacity.py --clients 1000 --limit-memory-soft 8192 \\
        --limit-memory-hard 9216
    python3 bench/bench_capacity.py --clients 1000 --pgbouncer   # PgBouncer, session pooling
    python3 bench/bench_capacity.py --clients 1000 --shards 2 --workers 1   # 2 Odoo, nginx

``--pgbouncer`` starts PgBouncer (``apt-get install pgbouncer``) on 127.0.0.1
in SESSION pooling mode and points Odoo at it: Odoo's LISTEN (bus) and
session-level advisory locks need one server session per client session,
which transaction pooling breaks.  ``--keep`` leaves the template and the
clones for the next run (which reuses them); otherwise every database the
bench made is dropped at the end, Ctrl-C included.  It only ever touches
databases named ``capbench-*`` that carry its own comment.

Not a test: the numbers depend on the machine; compare them within one run only.
"""

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_provision import odoo_process, pct  # noqa: E402
from dev_workspace import workspace  # noqa: E402

PREFIX = "capbench-"
TEMPLATE = PREFIX + "template"
#: ``COMMENT ON DATABASE`` of every database the bench makes: it drops no other.
MARKER = "made by bench/bench_capacity.py"
MIB = 1024 * 1024
GIB = 1024 * MIB
#: Odoo 18's registry LRU: ``int(limit_memory_soft / (15 * 1024 * 1024))`` per process.
REGISTRY_AVG = 15 * MIB
#: The seed's claims, bytes per 100 clients.
CLAIMS = (("seed's per-client Odoo sizing, 24 GB / 100", 24e9),
          ("seed's Docker per client, 200 GB / 100", 200e9))
GOAL_CLIENTS, GOAL_TOTAL, GOAL_P95 = 1000, 12 * GIB, 0.5
HTTP_OK, HTTP_SEE_OTHER = 200, 303
ADMIN = ("admin", "admin")  # the template's administrator (-i base without demo)
PROBE_ROUTE = "/capbench/probe"
PROBE_FILES = {
    "__init__.py": "from . import probe\n",
    "__manifest__.py": "{'name': 'capbench probe', 'version': '1.0', 'depends': ['base'], "
                       "'license': 'LGPL-3', 'installable': True}\n",
    "probe.py": '''"""Server-wide probe of bench_capacity: what this worker holds."""
import json
import os
import time

import psutil

from odoo import http, sql_db
from odoo.modules.registry import Registry


class CapbenchProbe(http.Controller):
    @http.route("%s", type="http", auth="none", save_session=False)
    def probe(self):
        time.sleep(0.2)  # keeps this worker busy so that the next probe meets the other one
        mem = psutil.Process().memory_info()
        pool = sql_db._Pool
        return http.Response(json.dumps({
            "pid": os.getpid(), "registries": len(Registry.registries),
            "capacity": Registry.registries.count,
            "pool": len(pool._connections) if pool else 0,
            "vms": mem.vms, "rss": mem.rss}), content_type="application/json")
''' % PROBE_ROUTE,
}
NGINX_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
NGINX_CONF = """\
daemon off;
pid %(folder)s/nginx.pid;
error_log %(folder)s/error.log;
events {}
http {
    access_log %(folder)s/access.log;
%(temp_paths)s%(upstreams)s    server {
        listen 127.0.0.1:%(port)d;
        set $saas_shard $host;
        proxy_read_timeout 300s;
        proxy_max_temp_file_size 0;
        proxy_set_header Host $host;
        location /websocket {
            proxy_pass http://saas_odoo_websocket;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
        }
        location / {
            proxy_pass http://saas_odoo;
        }
    }
}
"""
LOG_RE = re.compile(r"^\S+ \S+ (\d+) (\w+) (\S+) (\S+): (.*)")
LOG_EVENTS = (
    ("registry loads", re.compile(r"Registry loaded in")),
    ("memory-limit recycles", re.compile(r"virtual memory limit|max memory")),
    ("'too many clients'", re.compile(r"too many clients|remaining connection slots")),
    ("'Connection Pool Is Full'", re.compile(r"Connection Pool Is Full")),
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="N client databases")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="per Odoo server")
    parser.add_argument("--shards", type=int, default=1,
                        help="K Odoo servers behind nginx, sharded by host")
    parser.add_argument("--limit-memory-soft", type=int, default=2048, help="MiB")
    parser.add_argument("--limit-memory-hard", type=int, default=2560, help="MiB")
    parser.add_argument("--db-maxconn", type=int, default=64,
                        help="Odoo's connection pool size per process")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="serve through PgBouncer in session pooling mode")
    parser.add_argument("--pgbouncer-server-conns", type=int, default=0,
                        help="PgBouncer's max_user_connections (0: max_connections - 10)")
    parser.add_argument("--phases", default="cold,warm,login",
                        help="comma-separated, in order; a phase may repeat (cold,warm,warm)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the template and clones for the next run")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be 1 or more")
    return args


# -- outside the venv --------------------------------------------------------

def outer():
    """./dev's workspace, then this script again inside the venv.  Ctrl-C reaches the
    inner process directly (same terminal): this one waits for its cleanup."""
    with workspace("odoo-bench.conf") as (ws, conf):
        ws.odoo_cmd(conf)  # makes sure the launcher exists
        env = dict(ws.child_env(), SAAS_BENCH_CONF=str(conf))
        child = subprocess.Popen([str(ws.python), __file__, *sys.argv[1:]], env=env)
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                print("interrupted: waiting for the bench to clean up ...", flush=True)


# -- databases ---------------------------------------------------------------

def client_name(index):
    return "%sc%04d.localhost" % (PREFIX, index)


def ours(conn, name):
    """True only for a database this bench made: its prefix and its comment."""
    from engine import pg

    return name.startswith(PREFIX) and pg.comment(conn, name) == MARKER


def existing(conn):
    with conn.cursor() as cr:
        cr.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (PREFIX,))
        names = [row[0] for row in cr.fetchall()]
    return {name for name in names if ours(conn, name)}


def ensure_template(conn, conf):
    """The base+mail template, built once (reused when an earlier --keep left it)."""
    from engine import pg

    if pg.exists(conn, TEMPLATE):
        if not ours(conn, TEMPLATE):
            raise SystemExit("%s exists and was not made by this bench: not touching it"
                             % TEMPLATE)
        print("template: reusing %s" % TEMPLATE, flush=True)
        return None
    print("template: building %s (-i base,mail) ..." % TEMPLATE, flush=True)
    seconds = odoo_process(conf, "-d", TEMPLATE, "-i", "base,mail")
    pg.set_comment(conn, TEMPLATE, MARKER)
    pg.mark_template(conn, TEMPLATE, True)  # as a locked template: never served
    print("template: built in %.1f s" % seconds, flush=True)
    return seconds


def ensure_clones(conn, count, data_dir, present):
    """Clones 1..count, the product's way; returns the clone times of those made now."""
    from engine import filestore, pg

    source = filestore.filestore_path(data_dir, TEMPLATE)
    print("template filestore: %s" % ("%d files" % sum(len(f) for _r, _d, f in os.walk(source))
                                      if os.path.isdir(source) else "none"), flush=True)
    times = []
    for index in range(1, count + 1):
        name = client_name(index)
        if name in present:
            continue
        start = time.perf_counter()
        pg.clone(conn, TEMPLATE, name)
        pg.set_comment(conn, name, MARKER)
        target = filestore.filestore_path(data_dir, name)
        if os.path.isdir(source):
            filestore.remove_tree(target)  # a stale one of a dropped database of ours
            filestore.clone_tree(source, target)
        times.append(time.perf_counter() - start)
        present.add(name)
        if len(times) % 100 == 0:
            print("  %d clones made ..." % len(times), flush=True)
    return times


def drop_ours(params, data_dir):
    from engine import filestore, pg

    with pg.maintenance(params) as conn:
        names = existing(conn)
        print("dropping %d databases made by this bench ..." % len(names), flush=True)
        for name in sorted(names):
            try:
                pg.drop(conn, name)
                filestore.remove_tree(filestore.filestore_path(data_dir, name))
            except pg.PgError as exc:
                print("could not drop %s: %s" % (name, exc))


# -- processes and memory ----------------------------------------------------

def descendants(root):
    """``root`` and every process below it (from /proc's ppid fields)."""
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def pss(pids):
    """Total PSS in bytes of ``pids`` (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as f:
                for row in f:
                    if row.startswith("Pss:"):
                        total += int(row.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def postmaster_pid():
    try:
        return int((REPO / ".local" / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # an external server (PG* variables): not measurable here


def memory(run):
    """PSS of every Odoo process tree (all shards), PostgreSQL, PgBouncer and nginx."""
    pg_pid = postmaster_pid()
    trees = {"odoo": [pid for shard in run.shards for pid in descendants(shard.proc.pid)],
             "pg": descendants(pg_pid) if pg_pid else [],
             "bouncer": descendants(run.bouncer.pid) if run.bouncer else [],
             "nginx": descendants(run.nginx.pid) if run.nginx else []}
    sizes = {name: pss(pids) for name, pids in trees.items()}
    sizes["total"] = sum(sizes.values())
    sizes["procs"] = {name: len(pids) for name, pids in trees.items()}
    return sizes


# -- PostgreSQL's view -------------------------------------------------------

def superuser_params(params):
    """The private cluster's bootstrap superuser, when there is one: it still gets in
    (superuser_reserved_connections) when Odoo's role has taken every slot."""
    user = os.environ.get("SAAS_DEV_PG_BOOTSTRAP_USER")
    return dict(params, user=user) if user else params


def connections(params):
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **superuser_params(params))
    conn.autocommit = True
    try:
        with conn.cursor() as cr:
            cr.execute("""
                SELECT coalesce(usename, '-'), coalesce(state, '-'), count(*),
                       count(DISTINCT datname)
                  FROM pg_stat_activity
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                 GROUP BY 1, 2 ORDER BY 1, 2""")
            rows = cr.fetchall()
            cr.execute("SELECT current_setting('max_connections')::int, "
                       "current_setting('superuser_reserved_connections')::int")
            limits = cr.fetchone()
    finally:
        conn.close()
    return rows, limits


# -- Odoo and PgBouncer ------------------------------------------------------

def write_probe(folder):
    module = folder / "capbench_probe"
    module.mkdir(parents=True, exist_ok=True)
    for name, text in PROBE_FILES.items():
        (module / name).write_text(text, encoding="utf-8")
    return folder


def wide_modules(value):
    """The configured server-wide modules as odoo.conf spells them."""
    return value if isinstance(value, str) else ",".join(value)


def start_odoo(conf, args, log, db_port, tag=""):
    """One prefork Odoo on free ports: ``(proc, port, gevent_port, log, tag)``."""
    from saasdev.pgcluster import free_port

    from odoo.tools import config

    port, gevent_port = free_port(), free_port()
    probe_dir = write_probe(REPO / ".local" / "capbench_addons")
    launcher = REPO / ".local" / "bin" / "odoo"
    cmd = [sys.executable, str(launcher), "-c", str(conf),
           "--workers", str(args.workers), "--max-cron-threads", "0",
           "--db-filter", "^%h$", "--http-interface", "127.0.0.1",
           "--http-port", str(port), "--gevent-port", str(gevent_port),
           "--limit-memory-soft", str(args.limit_memory_soft * MIB),
           "--limit-memory-hard", str(args.limit_memory_hard * MIB),
           "--db_maxconn", str(args.db_maxconn), "--db_port", str(db_port),
           "--addons-path", "%s,%s" % (config["addons_path"], probe_dir),
           "--load", "%s,capbench_probe" % wide_modules(config["server_wide_modules"]),
           "--logfile", str(log), "--log-level", "info"]
    log.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    return types.SimpleNamespace(proc=proc, port=port, gevent_port=gevent_port, log=log,
                                 tag=tag)


def service_place(name, flag):
    """The Debian binary of the helper server ``name`` (asked for by ``flag``) and its
    folder under ``.local``, made if missing."""
    binary = shutil.which(name) or "/usr/sbin/%s" % name
    if not os.access(binary, os.X_OK):
        raise SystemExit("%s: %s is not installed (apt-get install %s)" % (flag, name, name))
    folder = REPO / ".local" / ("capbench_%s" % name)
    folder.mkdir(parents=True, exist_ok=True)
    return binary, folder


def start_nginx(shards):
    """nginx in front of the shards with the product's upstreams (keyed by host), plain
    HTTP on 127.0.0.1, in the foreground; returns ``(process, port, folder)``."""
    from saasdev.pgcluster import free_port

    from engine import proxy

    binary, folder = service_place("nginx", "--shards")
    port = free_port()
    (folder / "nginx.conf").write_text(NGINX_CONF % {
        "folder": folder, "port": port,
        "temp_paths": "".join("    %s_temp_path %s;\n" % (name, folder / name)
                              for name in NGINX_TEMP_PATHS),
        "upstreams": "".join("    %s\n" % row for row in proxy.render_upstreams(*(
            ",".join("127.0.0.1:%d" % getattr(shard, key) for shard in shards)
            for key in ("port", "gevent_port"))).splitlines())})
    proc = subprocess.Popen([binary, "-e", str(folder / "error.log"), "-p", str(folder),
                             "-c", str(folder / "nginx.conf")], start_new_session=True)
    return proc, port, folder


def wait_up(proc, port, what="Odoo", timeout=120):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with status %s" % (what, proc.returncode))
        try:
            if requests.get("http://127.0.0.1:%d/web/health" % port, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("%s did not answer /web/health within %d s" % (what, timeout))


def start_pgbouncer(params, server_conns):
    """PgBouncer in session mode on 127.0.0.1, as the cluster's system user (it will
    not run as root); returns ``(process, port)``."""
    from saasdev.pgcluster import PrivateCluster, free_port

    binary, folder = service_place("pgbouncer", "--pgbouncer")
    port = free_port()
    (folder / "userlist.txt").write_text('"%s" ""\n' % params["user"])
    (folder / "pgbouncer.ini").write_text("\n".join([
        "[databases]",
        "* = host=%s port=%s" % (params["host"], params["port"]),
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        "listen_port = %d" % port,
        "unix_socket_dir =",
        "auth_type = trust",
        "auth_file = %s" % (folder / "userlist.txt"),
        "pool_mode = session",
        "max_client_conn = 5000",
        "default_pool_size = 20",
        "max_user_connections = %d" % server_conns,
        "server_idle_timeout = 30",
        "query_wait_timeout = 30",
        "logfile = %s" % (folder / "pgbouncer.log"),
        "pidfile = %s" % (folder / "pgbouncer.pid"),
        ""]))
    cmd = [binary, str(folder / "pgbouncer.ini")]
    user = PrivateCluster._system_user()
    if user:
        os.chown(folder, user.pw_uid, user.pw_gid)
        for child in folder.iterdir():
            os.chown(child, user.pw_uid, user.pw_gid)
        cmd = ["runuser", "-u", user.pw_name, "--", *cmd]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        raise RuntimeError("pgbouncer exited (see %s)" % (folder / "pgbouncer.log"))
    return proc, port


def stop_group(proc, sig=signal.SIGTERM, timeout=30):
    """Stop a process started in its own session, and its group, by its id."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def probe_workers(port, workers, tries=12):
    """What each HTTP worker holds: ``{pid: probe answer}`` (asked in pairs at once)."""
    import requests

    seen = {}

    def ask(_):
        try:
            answer = requests.get("http://127.0.0.1:%d%s" % (port, PROBE_ROUTE), timeout=30)
            return answer.json() if answer.ok else None
        except (requests.RequestException, ValueError):
            return None

    with ThreadPoolExecutor(workers) as pool:
        for _ in range(tries):
            for answer in pool.map(ask, range(workers)):
                if answer:
                    seen[answer["pid"]] = answer
            if len(seen) >= workers:
                break
    return seen


# -- the phases --------------------------------------------------------------

def timed_get(url, host, session=None, **kwargs):
    import requests

    start = time.perf_counter()
    try:
        answer = (session or requests).get(url, headers={"Host": host}, timeout=180,
                                           allow_redirects=False, **kwargs)
        error = None if answer.status_code == HTTP_OK else "HTTP %d%s" % (
            answer.status_code, " -> %s" % urlsplit(answer.headers["Location"]).path
            if "Location" in answer.headers else "")
    except requests.RequestException as exc:
        answer, error = None, type(exc).__name__
    return time.perf_counter() - start, error, answer


def login_page(port):
    def run(host):
        seconds, error, _answer = timed_get("http://127.0.0.1:%d/web/login" % port, host)
        return {"GET /web/login": seconds}, error
    return run


CSRF_RE = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def logged_in_page(port):
    """Per client: the login form (its CSRF token), POST /web/login, GET /odoo."""
    import requests

    base = "http://127.0.0.1:%d" % port

    def run(host):
        with requests.Session() as session:
            _seconds, error, form = timed_get(base + "/web/login", host, session)
            token = CSRF_RE.search(form.text) if form is not None and not error else None
            if not token:
                return {}, error or "no CSRF token in the form"
            start = time.perf_counter()
            try:
                answer = session.post(base + "/web/login", headers={"Host": host}, timeout=180,
                                      allow_redirects=False, data={
                                          "login": ADMIN[0], "password": ADMIN[1],
                                          "csrf_token": token.group(1), "redirect": "/odoo"})
            except requests.RequestException as exc:
                return {}, type(exc).__name__
            login = time.perf_counter() - start
            location = answer.headers.get("Location", "")
            if answer.status_code != HTTP_SEE_OTHER or "/web/login" in location:
                return {"POST /web/login": login}, "login refused (HTTP %d)" % answer.status_code
            seconds, error, page = timed_get(base + "/odoo", host, session)
            if not error and "__session_info__" not in page.text:
                error = "GET /odoo is not the web client"
            return {"POST /web/login": login, "GET /odoo": seconds}, error
    return run


def run_phase(hosts, work, concurrency):
    times, errors = collections.defaultdict(list), collections.Counter()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for measured, error in pool.map(work, hosts):
            for label, seconds in measured.items():
                times[label].append(seconds)
            if error:
                errors[error] += 1
    return times, errors, time.perf_counter() - start


class LogWatch:
    """Counts Odoo's log events (per worker pid for registry loads) since the last call."""

    def __init__(self, path):
        self.path, self.offset = path, 0

    def since_last(self):
        counts, loads, errors = collections.Counter(), collections.Counter(), collections.Counter()
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except OSError:
            return counts, loads, errors
        for row in text.splitlines():
            match = LOG_RE.match(row)
            for label, pattern in LOG_EVENTS:
                if pattern.search(row):
                    counts[label] += 1
                    if match and label == "registry loads":
                        loads[match.group(1)] += 1
            if match and match.group(2) in ("ERROR", "CRITICAL"):
                errors[re.sub(r"\d+", "#", match.group(5))[:90]] += 1
        return counts, loads, errors


# -- reporting ---------------------------------------------------------------

def mib(value):
    return "%7.0f MiB" % (value / MIB)


def print_state(run, label, sizes):
    """The figures after a phase: memory, connections, workers, log events."""
    baseline = getattr(run, "baseline", None)
    marginal = (sizes["total"] - baseline["total"]) / run.args.clients if baseline else 0.0
    print("  memory after %-6s Odoo %s (%d procs)  PostgreSQL %s (%d procs)%s%s  total %s  "
          "marginal %.1f MiB/client" % (
              label, mib(sizes["odoo"]), sizes["procs"]["odoo"], mib(sizes["pg"]),
              sizes["procs"]["pg"],
              "  PgBouncer %s" % mib(sizes["bouncer"]) if sizes["procs"]["bouncer"] else "",
              "  nginx %s (%d procs)" % (mib(sizes["nginx"]), sizes["procs"]["nginx"])
              if sizes["procs"]["nginx"] else "", mib(sizes["total"]), marginal / MIB))
    try:
        rows, (max_conn, reserved) = connections(run.params)
        held = sum(row[2] for row in rows)
        print("  connections: %d client backends of max_connections %d (%d reserved for "
              "superusers): %s" % (held, max_conn, reserved, ", ".join(
                  "%s/%s %d (%d dbs)" % row for row in rows) or "none"))
    except Exception as exc:  # the figure is missing, the run goes on
        print("  connections: could not ask PostgreSQL: %s" % str(exc).strip())
    for shard in run.shards:
        print_shard(run, shard)
    sys.stdout.flush()


def print_shard(run, shard):
    """One Odoo server's workers (asked directly, not through nginx) and log events."""
    for pid, answer in sorted(probe_workers(shard.port, run.args.workers).items()):
        print("  worker %d%s: registries %d of LRU %d, pooled connections %d of db_maxconn %d, "
              "VMS %s (soft limit counts VMS), RSS %s" % (
                  pid, shard.tag, answer["registries"], answer["capacity"], answer["pool"],
                  run.args.db_maxconn, mib(answer["vms"]).strip(), mib(answer["rss"]).strip()))
    counts, loads, errors = shard.watch.since_last()
    print("  Odoo log%s: %s; registry loads per pid: %s" % (
        shard.tag, ", ".join("%s %d" % (name, counts[name]) for name, _ in LOG_EVENTS),
        ", ".join("%s: %d" % item for item in sorted(loads.items())) or "none"))
    for error, number in errors.most_common(4):
        print("    %5d x ERROR %s" % (number, error))


def phase_line(label, values):
    if not values:
        return "%-28s n=0" % label
    return "%-28s n=%-5d p50 %7.3f s   p95 %7.3f s   max %7.3f s" % (
        label, len(values), pct(values, 50), pct(values, 95), max(values))


def report(run):
    args, results, peak, baseline = run.args, run.results, run.peak, run.baseline
    count = args.clients
    print()
    print("=" * 100)
    print("SUMMARY  N=%d clients, %s --workers %d --max-cron-threads 0, limit-memory-soft "
          "%d MiB / hard %d MiB, db_maxconn %d, %s, concurrency %d" % (
              count, "one Odoo" if args.shards == 1 else
              "%d Odoo behind nginx (sharded by host), each" % args.shards,
              args.workers, args.limit_memory_soft, args.limit_memory_hard,
              args.db_maxconn, "PgBouncer (session pooling)" if args.pgbouncer
              else "PostgreSQL direct", args.concurrency))
    if run.clone_times:
        print(phase_line("clone (engine.pg + filestore)", run.clone_times))
    print("registry LRU per worker: int(%d MiB / 15 MiB) = %d databases (x %d workers%s); "
          "clients %d" % (args.limit_memory_soft, run.lru, args.workers * args.shards,
                          " in %d shards" % args.shards if args.shards > 1 else "", count))
    for phase, (times, errors, wall) in results.items():
        for label, values in times.items():
            print(phase_line("%s %s" % (phase, label), values))
        print("%-28s wall %.1f s, errors %d%s" % (
            "", wall, sum(errors.values()),
            " (%s)" % ", ".join("%d x %s" % (n, e) for e, n in errors.most_common(4))
            if errors else ""))
    total = peak["total"]
    print("memory: idle server %s; peak over phases %s (Odoo %s, PostgreSQL %s%s%s); "
          "marginal %.1f MiB/client" % (
              mib(baseline["total"]).strip(), mib(total).strip(), mib(peak["odoo"]).strip(),
              mib(peak["pg"]).strip(), ", PgBouncer %s" % mib(peak["bouncer"]).strip()
              if peak["bouncer"] else "", ", nginx %s" % mib(peak["nginx"]).strip()
              if peak["nginx"] else "", (total - baseline["total"]) / count / MIB))
    for label, per_hundred in CLAIMS:
        claim = per_hundred * count / 100
        print("ratio measured / %s -> %.0f GB for %d: %.4f (%.0fx less)" % (
            label, claim / 1e9, count, total / claim, claim / total))
    projected = baseline["total"] + (total - baseline["total"]) / count * GOAL_CLIENTS
    warm = results.get("warm", ({}, None, 0))[0].get("GET /web/login", [])
    warm_errors = sum(results["warm"][1].values()) if "warm" in results else 0
    print("goal %d clients, total <= %.0f GiB: %s %.2f GiB -> %s" % (
        GOAL_CLIENTS, GOAL_TOTAL / GIB, "measured" if count >= GOAL_CLIENTS
        else "linear projection from N=%d:" % count, projected / GIB,
        "MET" if projected <= GOAL_TOTAL else "NOT MET"))
    if warm:
        print("goal warm p95 <= %.1f s: %.3f s at N=%d, %d warm errors -> %s" % (
            GOAL_P95, pct(warm, 95), count, warm_errors,
            "MET" if pct(warm, 95) <= GOAL_P95 and not warm_errors else "NOT MET"))


# -- inside the venv ---------------------------------------------------------

def inner(args):
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tools"))
    from odoo.tools import config

    conf = os.environ["SAAS_BENCH_CONF"]
    config.parse_config(["-c", conf])
    run = types.SimpleNamespace(
        args=args, conf=conf, data_dir=config["data_dir"], results={}, clone_times=[],
        params={key: config[f"db_{key}"] for key in ("host", "port", "user")},
        lru=int(args.limit_memory_soft * MIB / REGISTRY_AVG), shards=[], bouncer=None,
        nginx=None)
    print("Odoo limits: --limit-memory-soft %d MiB, --limit-memory-hard %d MiB (Odoo's "
          "defaults: 2048 / 2560), --db_maxconn %d (default 64), --workers %d, "
          "--max-cron-threads 0%s" % (args.limit_memory_soft, args.limit_memory_hard,
                                      args.db_maxconn, args.workers,
                                      ", in each of %d Odoo servers sharded by host"
                                      % args.shards if args.shards > 1 else ""), flush=True)
    print("registry LRU per worker: int(limit_memory_soft / 15 MiB) = %d databases" % run.lru)
    try:
        prepare_databases(run)
        serve(run)
        measure(run)
        report(run)
    finally:
        for shard in run.shards:
            stop_group(shard.proc, signal.SIGINT)
        stop_group(run.nginx)
        stop_group(run.bouncer)
        if args.keep:
            print("--keep: the template and the clones stay for the next run")
        else:
            drop_ours(run.params, run.data_dir)


def prepare_databases(run):
    from engine import pg

    wanted = {client_name(i) for i in range(1, run.args.clients + 1)}
    with pg.maintenance(run.params) as conn:
        present = existing(conn)
        ensure_template(conn, run.conf)
        present.discard(TEMPLATE)
        print("clones: %d present, making %d ..." % (
            len(present & wanted), len(wanted - present)), flush=True)
        run.clone_times = ensure_clones(conn, run.args.clients, run.data_dir, present)
    if run.clone_times:
        print(phase_line("clone (engine.pg + filestore)", run.clone_times), flush=True)


def serve(run):
    db_port = run.params["port"]
    if run.args.pgbouncer:
        server_conns = run.args.pgbouncer_server_conns or max(
            10, connections(run.params)[1][0] - 10)
        run.bouncer, db_port = start_pgbouncer(run.params, server_conns)
        print("pgbouncer: session pooling on 127.0.0.1:%d, max_user_connections %d" % (
            db_port, server_conns), flush=True)
    start_shards(run, db_port)
    run.port = run.shards[0].port
    if run.args.shards > 1:
        run.nginx, run.port, folder = start_nginx(run.shards)
        wait_up(run.nginx, run.port, "nginx")
        print("nginx: sharding by host over %d Odoo servers, on 127.0.0.1:%d (conf and logs in %s)"
              % (run.args.shards, run.port, folder), flush=True)
    time.sleep(2)
    run.baseline = run.peak = memory(run)
    print("before any client request:")
    print_state(run, "start", run.baseline)


def start_shards(run, db_port):
    """K Odoo servers (one, named as before, without --shards), each up before the next."""
    logs, sharded = REPO / ".local" / "logs", run.args.shards > 1
    for number in range(1, run.args.shards + 1):
        log = logs / ("bench_capacity-odoo%s.log" % ("-shard%d" % number if sharded else ""))
        shard = start_odoo(run.conf, run.args, log, db_port,
                           " (shard %d)" % number if sharded else "")
        run.shards.append(shard)
        wait_up(shard.proc, shard.port)
        print("odoo%s: prefork, %d workers, on 127.0.0.1:%d (log %s)" % (
            shard.tag, run.args.workers, shard.port, log), flush=True)
        shard.watch = LogWatch(log)


def measure(run):
    args = run.args
    hosts = [client_name(i) for i in range(1, args.clients + 1)]
    works = {"cold": login_page(run.port), "warm": login_page(run.port),
             "login": logged_in_page(run.port)}
    for number, name in enumerate(args.phases.split(","), 1):
        # A phase may come twice (cold,warm,warm): each worker loads a registry on
        # its own, so the second warm pass is the first where both may hold it.
        phase = name if name not in run.results else "%s#%d" % (name, number)
        print("phase %s: %d clients at concurrency %d ..." % (
            phase, len(hosts), args.concurrency), flush=True)
        run.results[phase] = times, errors, wall = run_phase(hosts, works[name],
                                                             args.concurrency)
        for label, values in times.items():
            print("  " + phase_line(label, values))
        print("  wall %.1f s, errors %d %s" % (wall, sum(errors.values()),
                                               dict(errors.most_common(4))))
        sizes = memory(run)
        run.peak = max(run.peak, sizes, key=lambda s: s["total"])
        print_state(run, phase, sizes)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    if os.environ.get("SAAS_BENCH_CONF"):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        inner(ARGS)
    else:
        sys.exit(outer())
