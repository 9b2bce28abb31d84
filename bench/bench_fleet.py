"""Fleet update benchmark: an update campaign against a naive ``odoo -u`` loop.

Measured side by side in one run, on the same PostgreSQL, the same N
instances (clones of one base + ``saas_fleet_probe`` template, provisioned
through saas_manager and served by a threaded Odoo HTTP server started here,
with ``dbfilter = ^%h$`` and saas_manager server-wide) and the same child
Odoo command line (python, launcher, odoo.conf, addons path, data dir).
Each "release" is the test addon ``tests/addons/saas_fleet_probe`` copied
into a temporary addons folder on that addons path, its version bumped, with
the working migration ``tests/addons/releases/good.py``, as tests/test_fleet.py
makes them; every run does real work, checked afterwards in each database
(new version installed, one more migrated row):

* **campaign** (release 1.1): ``saas.update.campaign`` in mode *changed*
  over the N instances, canary 1, concurrency 2, driven as its crons would
  drive it (``_cron_advance()`` of the campaigns, then the operation runner
  ``saas.operation._cron_run()``, every 0.25 s).  Per instance it includes:
  the checksum plan, a verified backup, the maintenance page, the detached
  child ``odoo -u`` (polled every 3 s by the runner, the shipped
  ``UPDATE_POLL_SECONDS``), the check through the serving Odoo (``/web/login``
  and the administrator's login), the checksums stored, the page withdrawn;
* **campaign, nothing changed**: a second campaign right after the first,
  over the same instances: each is skipped after its checksum plan;
* **campaign, concurrency 1** (release 1.2; leave it out with
  ``--no-serial``): the first campaign's work one instance at a time, for a
  like-for-like comparison with the sequential anchor;
* **anchor: naive sequential loop** (the next release): ``odoo -u
  saas_fleet_probe -d <db> --stop-after-init`` over the same databases, one
  after the other, and nothing else: no backup, no check, no rollback.

Per-instance times are the campaign lines' ``seconds`` (the sum of their
operation's steps; the time a line waits for its turn is not in it; the
``odoo`` step runs until the runner's poll sees the child's end) and each
naive command's wall time; the ratios are against the naive loop (wall time,
and p50 per instance).  The skip campaign's wall time is mostly the bench's
cron cadence: each tick starts at most *concurrency* lines.

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_fleet.py [N] [--no-serial]      # N instances, default 20

About 13 minutes for N=20 on 2 cores; ``python3 bench/bench_fleet.py 4`` is a
quick check.  Every database, filestore, backup, process and file the bench
made is removed at the end, Ctrl-C included.  Not a test: the numbers depend on
the machine; compare them within one run only.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_provision import pct  # noqa: E402
from dev_workspace import rerun_in_venv  # noqa: E402

PROBE = "saas_fleet_probe"
ADDONS = REPO / "tests" / "addons"
SHIPPED_VERSION = "18.0.1.0.0"
#: How often the bench plays the crons (campaign advance, then the runner).
TICK = 0.25
#: A campaign or a naive update taking longer than this (seconds) is a failure.
CAMPAIGN_TIMEOUT = 3600
NAIVE = "anchor: naive sequential odoo -u"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=20)
    parser.add_argument("--no-serial", action="store_true",
                        help="leave out the campaign at concurrency 1")
    return parser.parse_args(argv)


class Bench:
    """One run's folders, names and results, and everything it must remove."""

    def __init__(self, work):
        from odoo.tools import config

        self.work, self.config = work, config
        self.addons_dir = work / "addons"
        self.tag = uuid.uuid4().hex[:6]
        self.made = []  # databases, dropped at the end (their filestores are in work)
        self.results = []  # (label, wall seconds, per-instance seconds)
        self.steps = {}  # campaign label -> {step name: seconds}, of the updating ones
        self.registry = self.server = None

    def params(self):
        params = {key: self.config["db_" + key] for key in ("host", "port", "user")}
        if self.config["db_password"]:
            params["password"] = self.config["db_password"]
        return params

    def release(self, version=None):
        """The probe addon as shipped (``version`` None), or release ``18.0.<version>``
        with the good migration."""
        target = self.addons_dir / PROBE
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ADDONS / PROBE, target, ignore=shutil.ignore_patterns("__pycache__"))
        if version:
            manifest = target / "__manifest__.py"
            manifest.write_text(manifest.read_text().replace(SHIPPED_VERSION, "18.0." + version))
            folder = target / "migrations" / ("18.0." + version)
            folder.mkdir(parents=True)
            shutil.copy(ADDONS / "releases" / "good.py", folder / "post-migrate.py")
        return "18.0." + version if version else SHIPPED_VERSION

    def odoo_cli(self, *arg_lists):
        """Run Odoo CLI commands (same launcher and options as the children) at once."""
        cmds = [[sys.executable, sys.argv[0], "-c", self.config.rcfile, *args,
                 "--addons-path=%s" % self.config["addons_path"],
                 "--data-dir=%s" % self.config["data_dir"], "--stop-after-init",
                 "--without-demo=all", "--log-level=warn", "--no-http"] for args in arg_lists]
        procs = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for cmd in cmds]
        for cmd, proc in zip(cmds, procs, strict=True):
            _out, err = proc.communicate()
            if proc.returncode:
                raise RuntimeError("%s failed:\n%s" % (" ".join(cmd[4:8]), err[-3000:]))

    def drop(self, names):
        from engine import pg
        from odoo import sql_db
        from odoo.modules.registry import Registry

        with pg.maintenance(self.params()) as conn:
            for name in names:
                Registry.delete(name)
                sql_db.close_db(name)
                try:
                    pg.drop(conn, name)
                except pg.PgError as exc:
                    print("could not drop %s: %s" % (name, exc))


def configure(conf, work):
    """Odoo's configuration: the bench conf, plus the release folder on the addons path,
    a data dir and backup folder of the run's own, and the launcher as ``sys.argv[0]``
    (``_saas_odoo_child`` starts children as this process was started)."""
    from odoo.tools import config

    config.parse_config(["-c", conf, "--log-level=warn", "--db-filter", "^%h$"])
    config["addons_path"] = "%s,%s" % (config["addons_path"], work / "addons")
    config["data_dir"] = str(work / "data")
    config["saas_backup_dir"] = str(work / "backups")
    config["max_cron_threads"] = 0  # the bench plays the crons itself
    config["saas_odoo_url"] = "http://127.0.0.1:%s" % config["http_port"]
    sys.argv[0] = str(REPO / ".local" / "bin" / "odoo")


def start_server(bench):
    import odoo
    from odoo.service.server import ThreadedServer

    bench.server = ThreadedServer(odoo.http.root)
    bench.server.http_spawn()


def setup(bench, env, count):
    """The template (base + the probe, its checksums stored) and N provisioned instances."""
    template = bench.made[0]
    env["ir.config_parameter"].set_param("saas.base_domain", "bench.localhost")
    env["saas.template"]._saas_store_checksums(template)
    tpl = env["saas.template"].create({
        "name": "Fleet", "code": "fleet", "database_name": template, "state": "configuring",
        "module_names": "base,%s" % PROBE, "admin_login": "admin", "admin_password": "admin",
        "pool_size": 0})
    tpl.action_lock()
    partner = env["res.partner"].create({"name": "Fleet Co", "email": "f@bench.test"})
    env.cr.commit()
    instances = env["saas.instance"]
    for index in range(count):
        instance = env["saas.instance"].create({
            "name": "f%d" % index, "subdomain": "f%d-%s" % (index, bench.tag),
            "partner_id": partner.id, "template_id": tpl.id,
            "plan_id": env.ref("saas_manager.plan_starter").id})
        bench.made.append(instance.database_name)
        env.cr.commit()
        if not instance._provision():
            raise RuntimeError("provisioning %s failed: %s" % (instance.name,
                                                               instance.operation_error))
        env.cr.commit()
        instances |= instance
    return instances


def check_fleet(bench, instances, version, migrated):
    """Every database runs ``version`` of the probe and has ``migrated`` migrated rows."""
    import psycopg2

    for name in instances.mapped("database_name"):
        with closing(psycopg2.connect(dbname=name, **bench.params())) as conn, \
                conn.cursor() as cr:
            cr.execute("SELECT latest_version FROM ir_module_module WHERE name = %s", [PROBE])
            found = cr.fetchone()[0]
            cr.execute("SELECT count(*) FROM saas_fleet_probe WHERE name = 'migrated'")
            rows = cr.fetchone()[0]
        if (found, rows) != (version, migrated):
            raise RuntimeError("%s: probe %s with %d migrated rows, expected %s with %d"
                               % (name, found, rows, version, migrated))


def drive(env, instances, label, concurrency):
    """A campaign over ``instances``, advanced as its crons would; its wall time."""
    campaign = env["saas.update.campaign"].create({
        "name": label, "scope": "selection", "instance_ids": [(6, 0, instances.ids)],
        "canary_count": 1, "concurrency": concurrency})
    env.cr.commit()
    start = time.perf_counter()
    campaign.action_start()
    env.cr.commit()
    while True:
        env["saas.update.campaign"]._cron_advance()
        env["saas.operation"]._cron_run()
        env.cr.commit()
        env.invalidate_all()
        if campaign.state != "running":
            break
        if time.perf_counter() - start > CAMPAIGN_TIMEOUT:
            raise RuntimeError("%s did not end within %d s" % (label, CAMPAIGN_TIMEOUT))
        time.sleep(TICK)
    return campaign, time.perf_counter() - start


def run_campaign(bench, env, instances, label, concurrency, *, expected="done"):
    campaign, wall = drive(env, instances, label, concurrency)
    lines = campaign.line_ids
    if campaign.state != "done" or set(lines.mapped("state")) != {expected}:
        raise RuntimeError("%s ended %s: %s" % (label, campaign.state, [
            (line.instance_id.name, line.state, line.error) for line in lines]))
    bench.results.append((label, wall, lines.mapped("seconds")))
    if expected == "done":
        steps = bench.steps[label] = defaultdict(list)
        for step in lines.operation_id.step_ids:
            steps[step.name].append(step.seconds)
    print("%s: %.1f s" % (label, wall), flush=True)


def naive_loop(bench, env, instances):
    """``odoo -u`` of the probe in each database, one after the other, with the command
    line the campaign's children get (``engine.odoo_process.command``)."""
    from engine import odoo_process

    python, launcher, rcfile, options, child_env = env["saas.instance"]._saas_odoo_child()
    times = []
    start = time.perf_counter()
    for name in instances.mapped("database_name"):
        log = bench.work / ("naive-%s.log" % name)
        args = odoo_process.command(python, launcher, rcfile, name, [PROBE], update=True,
                                    logfile=str(log), options=options)
        began = time.perf_counter()
        done = subprocess.run(args, env=child_env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - began)
        if done.returncode:
            raise RuntimeError("odoo -u of %s failed:\n%s" % (name, log.read_text()[-3000:]))
    bench.results.append((NAIVE, time.perf_counter() - start, times))
    print("%s: %.1f s" % (NAIVE, bench.results[-1][1]), flush=True)


def measure(bench, env, args):
    print("provisioning %d instances ..." % args.count, flush=True)
    instances = setup(bench, env, args.count)
    version = bench.release("1.1.0")
    run_campaign(bench, env, instances, "campaign, canary 1, concurrency 2", 2)
    check_fleet(bench, instances, version, 1)
    run_campaign(bench, env, instances, "campaign, nothing changed (skip)", 2,
                 expected="skipped")
    check_fleet(bench, instances, version, 1)
    migrated = 1
    if not args.no_serial:
        version, migrated = bench.release("1.2.0"), migrated + 1
        run_campaign(bench, env, instances, "campaign, canary 1, concurrency 1", 1)
        check_fleet(bench, instances, version, migrated)
    version, migrated = bench.release("1.3.0" if migrated > 1 else "1.2.0"), migrated + 1
    naive_loop(bench, env, instances)
    check_fleet(bench, instances, version, migrated)


def stop_updates(bench):
    """End the detached update processes a Ctrl-C left running, as the feature does."""
    from odoo import SUPERUSER_ID, api

    with bench.registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        for operation in env["saas.operation"].search([("kind", "=", "update"),
                                                       ("state", "=", "running")]):
            operation.instance_id._update_stop(operation)


def cleanup(bench):
    if bench.registry:
        try:
            stop_updates(bench)
        except Exception as exc:  # the databases go anyway
            print("could not stop the update processes: %s" % exc)
    if bench.server:
        bench.server.httpd.shutdown()
        bench.server.httpd.server_close()
    bench.drop(bench.made)
    shutil.rmtree(bench.work, ignore_errors=True)


def report(bench, count):
    anchor = next(result for result in bench.results if result[0] == NAIVE)
    print("\n%d instances; per instance: a campaign line's seconds (its steps), or one "
          "naive command's wall time\n" % count)
    print("%-36s %7s %7s %7s %12s %12s" % ("", "wall s", "p50 s", "p95 s", "x naive wall",
                                           "x naive p50"))
    for label, wall, values in bench.results:
        print("%-36s %7.1f %7.2f %7.2f %12.3f %12.3f" % (
            label, wall, pct(values, 50), pct(values, 95), wall / anchor[1],
            pct(values, 50) / pct(anchor[2], 50)))
    for label, steps in bench.steps.items():
        print("\nsteps of the %s, per instance:" % label)
        for name, values in steps.items():
            print("  %-12s p50 %6.2f s   p95 %6.2f s" % (name, pct(values, 50),
                                                       pct(values, 95)))
    print("\ncampaign: checksum plan, verified backup, maintenance page, child odoo -u "
          "(polled every 3 s), check through the serving Odoo, checksums stored, page "
          "withdrawn; rollback on failure.\nnaive loop: odoo -u only, one database after "
          "the other; no backup, no check, no rollback.")


def inner(args):
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="bench_fleet_", dir=REPO / ".local"))
    configure(os.environ["SAAS_BENCH_CONF"], work)
    bench = Bench(work)
    bench.release()
    bench.made += ["bench_fleet_%s_tpl" % bench.tag, "bench_fleet_%s_mgr" % bench.tag]
    try:
        print("building the template (-i base,%s) and the manager database ..." % PROBE,
              flush=True)
        bench.odoo_cli(["-d", bench.made[0], "-i", "base," + PROBE],
                       ["-d", bench.made[1], "-i", "saas_manager"])
        start_server(bench)
        bench.registry = Registry(bench.made[1])
        with bench.registry.cursor() as cr:
            measure(bench, api.Environment(cr, SUPERUSER_ID, {}), args)
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup(bench)
    report(bench, args.count)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    if os.environ.get("SAAS_BENCH_CONF"):
        inner(ARGS)
    else:
        sys.exit(rerun_in_venv(__file__))
