"""Health cron benchmark: 1,000 instance records against local HTTP endpoints.

Runs the real ``saas.instance._cron_health()`` (HTTP check, database check,
results written in batches) in a manager database built for the run, with
``saas_odoo_url`` pointing at one local server (``bench/health_endpoints.py``)
that answers according to each instance's host:

* **anchor**: 1,000 instances that all answer at once (``up-*``);
* **mixed**: 1,000 instances, of which 100 hang (``slow-*``, they never answer
  within the read timeout), 50 reset the connection (``dead-*``), 50 answer
  500 (``err-*``) and 800 answer at once.

The wall time is also split: ``recording`` is what follows the checks
(the results written in the manager database, committed per batch).

Both runs use the shipped defaults (concurrency 32, timeouts 3 s connect /
5 s read), measured side by side in one run.  The mixed run is bounded by
``ceil(hanging / concurrency) x read timeout`` = ceil(100/32) x 5 s = 20 s
plus the answering ones.  The instance databases do not exist (creating
2,000 databases is not the point), so each database check is a real
PostgreSQL login refused with "does not exist", and instances show as down
for that reason; the HTTP outcome is counted separately.

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_health.py [N]      # N instances per run, default 1000

Not a test: the numbers depend on the machine; compare them within one run.
"""

import os
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_provision import drop_all, odoo_process, outer, pct  # noqa: E402

MIX = (("slow", 0.10), ("dead", 0.05), ("err", 0.05))


def inner(count):
    import health_endpoints

    from odoo.modules.registry import Registry
    from odoo.tools import config

    config.parse_config(["-c", os.environ["SAAS_BENCH_CONF"]])
    config["list_db"] = True  # drop_all uses the database manager's own function
    manager = "bench_health_%s" % uuid.uuid4().hex[:6]
    try:
        print("building the manager database (-i saas_manager) ...", flush=True)
        odoo_process(os.environ["SAAS_BENCH_CONF"], "-d", manager, "-i", "saas_manager")
        server, _thread, port = health_endpoints.start(slow_seconds=30)
        config["saas_odoo_url"] = "http://127.0.0.1:%d" % port
        try:
            results = run_both(Registry(manager), count)
        finally:
            health_endpoints.stop(server)
    finally:
        drop_all([manager])
    report(results, count)


def run_both(registry, count):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("saas.base_domain", "bench.localhost")
        anchor = make_instances(env, ["up"] * count)
        kinds = [kind for kind, share in MIX for _ in range(int(count * share))]
        mixed = make_instances(env, kinds + ["up"] * (count - len(kinds)))
        cr.commit()
        return {"anchor (all answer)": timed_run(env, anchor, mixed),
                "mixed (hang/reset/500)": timed_run(env, mixed, anchor)}


def make_instances(env, kinds):
    partner = env["res.partner"].create({"name": "Bench Co", "email": "b@bench.test"})
    run = uuid.uuid4().hex[:4]
    instances = env["saas.instance"].create([{
        "name": "%s %d" % (kind, index), "subdomain": "%s-%s-%d" % (kind, run, index),
        "partner_id": partner.id, "template_id": env.ref("saas_manager.template_blank").id,
        "plan_id": env.ref("saas_manager.plan_starter").id,
    } for index, kind in enumerate(kinds)])
    instances.write({"state": "draft"})
    return instances


def timed_run(env, checked, idle):
    """One cron run over ``checked`` while ``idle`` is out of scope; returns the figures.

    ``record`` is the part of the wall time after the checks answered: writing
    the results (and committing them) in the manager database.
    """
    from odoo.addons.saas_manager.engine import health

    idle.write({"state": "draft"})
    checked.write({"state": "active", "health_failures": 0})
    env.cr.commit()
    probed = []
    check_all = health.check_all

    def timed_check_all(*args, **kwargs):
        results = check_all(*args, **kwargs)
        probed.append(time.perf_counter())
        return results

    start = time.perf_counter()
    with patch.object(health, "check_all", timed_check_all):
        env["saas.instance"]._cron_health()
    end = time.perf_counter()
    wall, record = end - start, end - probed[0]
    env.cr.commit()
    checked.invalidate_recordset()
    answered = [i.health_response_ms / 1000 for i in checked if i.health_response_ms]
    errors = Counter(re.sub(r"[\d\"'-]+", "#", i.health_error or "none")[:60] for i in checked)
    return {"wall": wall, "record": record, "answered": answered, "checked": len(checked),
            "errors": errors}


def report(results, count):
    print()
    for label, figures in results.items():
        answered = figures["answered"] or [0.0]
        print("%-24s %d instances  wall %6.2f s (recording %.2f s)   response p50 %.3f s  "
              "p95 %.3f s" % (label, figures["checked"], figures["wall"], figures["record"],
                              pct(answered, 50), pct(answered, 95)))
        for error, number in figures["errors"].most_common(5):
            print("  %5d x %s" % (number, error))
    anchor, mixed = results.values()
    print()
    print("ratio wall mixed / anchor: %.2f" % (mixed["wall"] / anchor["wall"]))
    print("bound for the mixed run: ceil(%d hanging / 32) x 5 s = %d s (+ answering ones)" % (
        int(count * MIX[0][1]), -(-int(count * MIX[0][1]) // 32) * 5))


if __name__ == "__main__":
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if os.environ.get("SAAS_BENCH_CONF"):
        inner(N)
    else:
        sys.exit(outer(__file__))
