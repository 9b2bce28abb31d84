"""Sign-up benchmark: a standby claim and a verified click, against cold provisioning.

Measured side by side in one run, on the same PostgreSQL, template (base,mail)
and threaded Odoo HTTP server:

* **claim**: ``saas.instance._provision({"pool": True})`` taking a ready
  standby database (rename, identity in SQL, filestore move), end to end;
* **click to first 200**: what a visitor waits for after clicking the mailed
  link: the POST of ``/saas/signup/verify`` (customer, portal user, instance,
  trial, claim, login link), the client's ``/saas/login`` page and POST, and
  the first ``/odoo`` page of the new instance answered 200, logged in (its
  registry loaded on the way);
* **anchor: cold provisioning**: ``_provision()`` without a pool (clone,
  filestore, sanitize, customize over JSON-RPC, proxy), then the first
  ``/web/login`` of the new instance.

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_signup.py [N]      # N samples of each, default 10

Prints p50/p95 and the ratios; goals: claim p50 <= 0.3 s, click to first
200 p50 <= 1 s.  Not a test: compare the numbers within one run only.
"""

import hashlib
import os
import re
import secrets
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_provision import drop_all, line, odoo_process, outer, pct  # noqa: E402

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
#: The issue's goals, p50 seconds.
CLAIM_GOAL, CLICK_GOAL = 0.3, 1.0
SEE_OTHER, OK = 303, 200


def inner(count):
    import odoo
    from odoo.modules.registry import Registry
    from odoo.service.server import ThreadedServer
    from odoo.tools import config

    conf = os.environ["SAAS_BENCH_CONF"]
    # The manager is reached as <its database>.localhost (%d), each client by its host (%h).
    config.parse_config(["-c", conf, "--db-filter", "^(%h|%d)$"])
    config["max_cron_threads"] = 0
    config["list_db"] = True  # drop_all drops through Odoo's database service
    run = uuid.uuid4().hex[:6]
    template, manager = "bench_tpl_%s" % run, "bench_mgr_%s" % run
    made = [template, manager]
    try:
        print("building the template (-i base,mail) and the manager database ...", flush=True)
        odoo_process(conf, "-d", template, "-i", "base,mail")
        odoo_process(conf, "-d", manager, "-i", "saas_manager")
        server = ThreadedServer(odoo.http.root)
        server.http_spawn()
        results = measure(Registry(manager), template, count, made, run)
    finally:
        drop_all(made)
    report(*results)


def measure(registry, template, count, made, run):
    from odoo import SUPERUSER_ID, api
    from odoo.tools import config

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("saas.base_domain", "bench.localhost")
        env["ir.config_parameter"].set_param(
            "web.base.url", "http://%s.localhost:%s" % (cr.dbname, config["http_port"]))
        tpl = env["saas.template"].create({
            "name": "Bench", "code": "bench", "database_name": template, "state": "configuring",
            "module_names": "base,mail", "admin_login": "admin", "admin_password": "admin",
            "pool_size": 0})
        tpl.action_lock()
        # Standbys serve the plans of their template's currency (a fresh base,mail is USD).
        env.ref("saas_manager.plan_starter").currency_id = env.ref("base.USD")
        cr.commit()
        claims, cold, cold_login, clicks = [], [], [], []
        for index in range(count):  # interleaved: the same machine state for both
            fill(env, tpl, 2, made)
            claims.append(provision(env, tpl, "c%d-%s" % (index, run), made, pool=True))
            seconds = provision(env, tpl, "p%d-%s" % (index, run), made, pool=False)
            cold.append(seconds)
            cold_login.append(seconds + first_page(env, "p%d-%s" % (index, run)))
            clicks.append(click(env, tpl, "v%d-%s" % (index, run), made))
        made.extend(env["saas.pool.database"].search([]).mapped("database_name"))
        tpl.action_unlock()
        cr.commit()
    return claims, clicks, cold, cold_login


def fill(env, tpl, size, made):
    """Fill the pool (not timed), as the runner does after each claim."""
    tpl.pool_size = size
    operation = env["saas.operation"]._queue(tpl, "pool_fill", wake=False)
    operation._execute()
    env.cr.commit()
    made.extend(tpl.pool_ids.mapped("database_name"))


def new_instance(env, tpl, subdomain, made):
    partner = env["res.partner"].create({"name": "Bench %s" % subdomain,
                                         "email": "%s@bench.test" % subdomain})
    instance = env["saas.instance"].create({
        "name": subdomain, "subdomain": subdomain, "partner_id": partner.id,
        "template_id": tpl.id, "plan_id": env.ref("saas_manager.plan_starter").id})
    made.append(instance.database_name)
    env.cr.commit()
    return instance


def provision(env, tpl, subdomain, made, pool):
    instance = new_instance(env, tpl, subdomain, made)
    start = time.perf_counter()
    ok = instance._provision({"pool": True} if pool else None)
    seconds = time.perf_counter() - start
    env.cr.commit()
    steps = env["saas.operation"].search([("instance_id", "=", instance.id)]).step_ids
    if not ok or (pool and steps[:1].name != "claim"):
        raise RuntimeError("%s: %s" % (subdomain, steps.mapped("name")))
    return seconds


def first_page(env, subdomain):
    import requests

    instance = env["saas.instance"].search([("subdomain", "=", subdomain)])
    start = time.perf_counter()
    response = requests.get(base() + "/web/login", headers={"Host": instance.host}, timeout=60)
    response.raise_for_status()
    return time.perf_counter() - start


def base():
    from odoo.tools import config

    return "http://127.0.0.1:%s" % config["http_port"]


def click(env, tpl, subdomain, made):
    """A pending signup (its token known here), then the visitor's click, timed to the
    first logged-in 200 of the new instance."""
    import requests

    token = secrets.token_urlsafe(32)
    signup = env["saas.signup"].create({
        "email": "%s@bench.test" % subdomain, "company_name": "Bench %s" % subdomain,
        "subdomain": subdomain, "template_id": tpl.id,
        "plan_id": env.ref("saas_manager.plan_starter").id,
        "token_hash": hashlib.sha256(token.encode()).hexdigest(),
        "expires_at": "2999-01-01 00:00:00"})
    made.append("%s.bench.localhost" % subdomain)
    env.cr.commit()
    manager, client = requests.Session(), requests.Session()
    manager_host = {"Host": "%s.localhost" % env.cr.dbname}
    page = manager.get(base() + "/saas/signup/verify", headers=manager_host, timeout=60)
    csrf = CSRF_RE.search(page.text).group(1)
    start = time.perf_counter()
    response = manager.post(base() + "/saas/signup/verify", headers=manager_host,
                            data={"token": token, "csrf_token": csrf}, allow_redirects=False,
                            timeout=60)
    location = response.headers.get("Location", "")
    if response.status_code != SEE_OTHER or "/saas/login#" not in location:
        raise RuntimeError("verify answered %s: %s" % (response.status_code, response.text[-500:]))
    host = {"Host": location.split("/")[2].split(":")[0]}
    page = client.get(base() + "/saas/login", headers=host, timeout=60)
    response = client.post(base() + "/saas/login", headers=host, timeout=60, data={
        "token": location.split("#")[1], "csrf_token": CSRF_RE.search(page.text).group(1)})
    seconds = time.perf_counter() - start
    if response.status_code != OK or "/odoo" not in response.url:
        raise RuntimeError("login answered %s at %s" % (response.status_code, response.url))
    env.cr.commit()
    env.invalidate_all()
    if signup.instance_id.state != "active":
        raise RuntimeError("the signup's instance is %s" % signup.instance_id.state)
    return seconds


def report(claims, clicks, cold, cold_login):
    print()
    print(line("claim from the standby pool", claims))
    print(line("verified click to first 200", clicks))
    print(line("anchor: cold provisioning", cold))
    print(line("anchor: cold + first /web/login", cold_login))
    print()
    print("ratio p50 claim / cold provisioning: %.2f" % (pct(claims, 50) / pct(cold, 50)))
    print("ratio p50 click to first 200 / cold + first page: %.2f" % (
        pct(clicks, 50) / pct(cold_login, 50)))
    print("goals: claim p50 <= %.1f s (%s), click p50 <= %.1f s (%s)" % (
        CLAIM_GOAL, "met" if pct(claims, 50) <= CLAIM_GOAL else "missed",
        CLICK_GOAL, "met" if pct(clicks, 50) <= CLICK_GOAL else "missed"))


if __name__ == "__main__":
    if "SAAS_BENCH_CONF" in os.environ:
        inner(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
    else:
        sys.exit(outer(__file__))
