"""Provisioning benchmark: saas_manager vs Odoo's own duplicate vs a fresh database.

Measured side by side in one run, on the same PostgreSQL and template:

* **saas_manager**: ``saas.instance._provision()`` end to end (clone, filestore,
  sanitize, customize over JSON-RPC through a real Odoo HTTP server, proxy),
  plus the first ``/web/login`` of the new instance;
* **anchor 1**: Odoo's ``exp_duplicate_database`` (what the database manager's
  "Duplicate" does), in-process, same template;
* **anchor 2**: a fresh ``-i base,mail`` database built by an Odoo process
  (what provisioning without templates costs).

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_provision.py [N]      # N instances, default 10

It prints p50/p95 per step and end to end, and the ratios.  Not a test: the
numbers depend on the machine; compare them within one run only.
"""

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from dev_workspace import workspace  # noqa: E402

FRESH_SAMPLES = 2


def pct(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def line(label, values):
    return "%-34s n=%-3d p50 %7.3f s   p95 %7.3f s" % (label, len(values), pct(values, 50),
                                                       pct(values, 95))


def odoo_process(conf, *args):
    """Run the Odoo CLI (same launcher as ./dev) and return its wall time."""
    launcher = REPO / ".local" / "bin" / "odoo"
    start = time.perf_counter()
    subprocess.run([sys.executable, str(launcher), "-c", str(conf), *args,
                    "--stop-after-init", "--without-demo=all", "--log-level=warn", "--no-http"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def outer(script=__file__):
    """Prepare (venv, PostgreSQL, conf) with ./dev's machinery, then re-run ``script``
    inside the venv."""
    with workspace("odoo-bench.conf") as (ws, conf):
        ws.odoo_cmd(conf)  # makes sure the launcher exists
        env = dict(ws.child_env(), SAAS_BENCH_CONF=str(conf))
        return subprocess.run([str(ws.python), script, *sys.argv[1:]], env=env,
                              check=False).returncode


def inner(count):
    import odoo
    from odoo.modules.registry import Registry
    from odoo.service import db as db_service
    from odoo.service.server import ThreadedServer
    from odoo.tools import config

    conf = os.environ["SAAS_BENCH_CONF"]
    config.parse_config(["-c", conf, "--db-filter", "^%h$"])
    config["list_db"] = True  # the anchor is the database manager's own function
    # No cron threads: the benchmark's process runs nothing but what it measures.
    config["max_cron_threads"] = 0
    run = uuid.uuid4().hex[:6]
    template, manager = "bench_tpl_%s" % run, "bench_mgr_%s" % run
    made = [template, manager]
    try:
        print("building the template (-i base,mail) and the manager database ...", flush=True)
        fresh = [odoo_process(conf, "-d", template, "-i", "base,mail")]
        for index in range(FRESH_SAMPLES - 1):
            name = "bench_fresh_%s_%d" % (run, index)
            made.append(name)
            fresh.append(odoo_process(conf, "-d", name, "-i", "base,mail"))
        odoo_process(conf, "-d", manager, "-i", "saas_manager")
        strategies = clone_strategies(template, count)
        server = ThreadedServer(odoo.http.root)
        server.http_spawn()
        ours, steps, first_login = provision_many(Registry(manager), template, count, made)
        dup = duplicate_many(db_service, template, count, made, run)
    finally:
        drop_all(made)
    report(ours, steps, first_login, dup, fresh)
    for strategy, values in strategies.items():
        print(line("CREATE DATABASE STRATEGY %s" % strategy, values))
    print("ratio p50 WAL_LOG / FILE_COPY: %.2f" % (
        pct(strategies["WAL_LOG"], 50) / pct(strategies["FILE_COPY"], 50)))


def clone_strategies(template, count):
    """Both PostgreSQL 15 clone strategies, interleaved, on the template (then dropped)."""
    sys.path.insert(0, str(REPO))
    from engine import pg
    from odoo.tools import config

    params = {key: config[f"db_{key}"] for key in ("host", "port", "user")}
    times = {name: [] for name in pg.STRATEGIES}
    with pg.maintenance(params) as conn:
        for index in range(count):
            for strategy in pg.STRATEGIES:
                name = "bench_strategy_%s_%d" % (strategy.lower(), index)
                start = time.perf_counter()
                pg.clone(conn, template, name, strategy=strategy)
                times[strategy].append(time.perf_counter() - start)
                pg.drop(conn, name)
    return times


def provision_many(registry, template, count, made):
    import requests

    from odoo import SUPERUSER_ID, api
    from odoo.tools import config

    ours, steps, first_login = [], {}, []
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("saas.base_domain", "bench.localhost")
        tpl = env["saas.template"].create({
            "name": "Bench", "code": "bench", "database_name": template, "state": "configuring",
            "module_names": "base,mail", "admin_login": "admin", "admin_password": "admin"})
        tpl.action_lock()
        partner = env["res.partner"].create({"name": "Bench Co", "email": "b@bench.test"})
        cr.commit()
        for index in range(count):
            instance = env["saas.instance"].create({
                "name": "b%d" % index, "subdomain": "b%d-%s" % (index, template[-6:]),
                "partner_id": partner.id, "template_id": tpl.id,
                "plan_id": env.ref("saas_manager.plan_starter").id})
            made.append(instance.database_name)
            cr.commit()
            start = time.perf_counter()
            ok = instance._provision()  # the provisioning operation, as the runner runs it
            ours.append(time.perf_counter() - start)
            cr.commit()
            operation = env["saas.operation"].search([("instance_id", "=", instance.id)])
            if not ok:
                raise RuntimeError(operation.error)
            for step in operation.step_ids:
                steps.setdefault(step.name, []).append(step.seconds)
            # Outside the steps: the operation record, its lock and commits, the welcome mail.
            steps.setdefault("(outside steps)", []).append(ours[-1] - operation.seconds)
            start = time.perf_counter()
            response = requests.get("http://127.0.0.1:%s/web/login" % config["http_port"],
                                    headers={"Host": instance.host}, timeout=60)
            response.raise_for_status()
            first_login.append(time.perf_counter() - start)
        tpl.action_unlock()
        cr.commit()
    return ours, steps, first_login


def duplicate_many(db_service, template, count, made, run):
    times = []
    for index in range(count):
        name = "bench_dup_%s_%d" % (run, index)
        made.append(name)
        start = time.perf_counter()
        db_service.exp_duplicate_database(template, name)
        times.append(time.perf_counter() - start)
    return times


def drop_all(names):
    from odoo.modules.registry import Registry
    from odoo.service import db as db_service

    for name in names:
        Registry.delete(name)
        try:
            db_service.exp_drop(name)
        except Exception as exc:
            print("could not drop %s: %s" % (name, exc))


def report(ours, steps, first_login, dup, fresh):
    print()
    print(line("saas_manager provision (end to end)", ours))
    for step, values in steps.items():
        print(line("  step %s" % step, values))
    print(line("  first /web/login after provision", first_login))
    print(line("anchor: exp_duplicate_database", dup))
    print(line("anchor: fresh -i base,mail", fresh))
    print()
    print("ratio p50 provision / exp_duplicate_database: %.2f" % (pct(ours, 50) / pct(dup, 50)))
    print("ratio p50 provision / fresh -i base,mail:     %.3f  (%.0fx faster)" % (
        pct(ours, 50) / pct(fresh, 50), pct(fresh, 50) / pct(ours, 50)))
    print("provision median: %.3f s (target p50 <= 1.0 s)" % statistics.median(ours))


if __name__ == "__main__":
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if os.environ.get("SAAS_BENCH_CONF"):
        inner(N)
    else:
        sys.exit(outer())
