"""``dev run``: a working SaaS manager on this machine, in the foreground.

Steps, each idempotent: Odoo 18, venv, PostgreSQL, an in-memory S3 server
for off-site copies (see ``s3server``), odoo.conf, the manager
database with saas_manager installed (updated when the module's files changed
since the last run), the Blank template's database, then Odoo itself until
Ctrl-C; once Odoo serves, a "demo" instance is provisioned through it (the
real cron, the real HTTP customization) and its URL and login are printed.
"""

import hashlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from . import odoo_log, pgcluster, s3server
from .errors import ToolError
from .odoo_conf import routing_of, write_conf

MANAGER_DB = "manager.localhost"
#: The Blank template's database per routing mode: ``tpl-blank`` as a host of the dev base
#: domain, as the product names template databases, so that Open Template reaches it.
BLANK_TEMPLATE_DB = {"host": "tpl-blank.localhost", "subdomain": "tpl-blank"}
MODULE_PARTS = (
    "__manifest__.py",
    "__init__.py",
    "models",
    "views",
    "security",
    "data",
    "wizards",
    "controllers",
    "engine",
    "static",
    "i18n",
    "report",
    "migrations",
)


def module_fingerprint(repo):
    """Hash of the module's files: an unchanged module is not updated again."""
    digest = hashlib.sha256()
    for part in MODULE_PARTS:
        path = repo / part
        files = (
            sorted(p for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else ([path] if path.is_file() else [])
        )
        for file in files:
            digest.update(str(file.relative_to(repo)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def installed_state(ws, database):
    """saas_manager's state in ``database`` ('' when the database or module is absent)."""
    if database not in ws.databases():
        return ""
    return ws.psql(
        "SELECT state FROM ir_module_module WHERE name = 'saas_manager';", database=database
    )


def ensure_manager_db(ws, run, conf):
    """Create or update the manager database; fail on any WARNING/ERROR in its log."""
    stamp = ws.local / "manager.fingerprint"
    fingerprint = module_fingerprint(ws.repo)
    state = installed_state(ws, MANAGER_DB)
    if state == "installed" and stamp.is_file() and stamp.read_text() == fingerprint:
        ws.say("manager: %s is up to date" % MANAGER_DB)
        return
    action = "-u" if state == "installed" else "-i"
    logfile = ws.logs / "manager-install.log"
    logfile.unlink(missing_ok=True)
    ws.say(
        "manager: %s saas_manager in %s (log: %s)"
        % ("updating" if action == "-u" else "installing", MANAGER_DB, logfile)
    )
    proc = run(
        ws.odoo_cmd(
            conf,
            "-d",
            MANAGER_DB,
            # Odoo's demo payment provider, so that the portal's Pay buttons work here.
            *(["-u", "saas_manager", "-i", "payment_demo"] if action == "-u"
              else ["-i", "saas_manager,payment_demo"]),
            "--stop-after-init",
            "--logfile",
            str(logfile),
        ),
        cwd=ws.repo,
        env=ws.child_env(),
    )
    lines = logfile.read_text(encoding="utf-8", errors="replace").splitlines() \
        if logfile.is_file() else []
    bad = odoo_log.analyse(lines, MANAGER_DB).bad_lines
    if proc.returncode or bad or installed_state(ws, MANAGER_DB) != "installed":
        raise ToolError(
            "installing saas_manager in %s failed; see %s%s"
            % (MANAGER_DB, logfile, (":\n  " + "\n  ".join(bad[:10])) if bad else "")
        )
    if action == "-i":
        set_company_currency(ws, conf, MANAGER_DB)
    stamp.write_text(fingerprint)


def ensure_blank_template(ws, run, conf):
    """Build the Blank template's database (base, mail) once; the demo locks it.

    Built under a temporary name and renamed when complete: an interrupted
    build is never mistaken for a template.
    """
    name = BLANK_TEMPLATE_DB[routing_of(conf)]
    databases = ws.databases()
    if name in databases:
        ws.say("template: %s exists" % name)
        return
    building = "%s_building" % name
    if building in databases:
        ws.drop_database(building)
    logfile = ws.logs / "blank-template.log"
    ws.say("template: building %s (base, mail; about 15 s, once)" % name)
    proc = run(ws.odoo_cmd(conf, "-d", building, "-i", "base,mail", "--stop-after-init",
                           "--without-demo=all", "--no-http", "--logfile", str(logfile)),
               cwd=ws.repo, env=ws.child_env())
    if proc.returncode:
        ws.drop_database(building)
        raise ToolError("building the Blank template failed; see %s" % logfile)
    set_company_currency(ws, conf, building)
    ws.psql('ALTER DATABASE :"old" RENAME TO :"new";', params=[("old", building),
                                                              ("new", name)])
    old_store, new_store = (ws.data_dir / "filestore" / building,
                            ws.data_dir / "filestore" / name)
    if old_store.is_dir():
        old_store.rename(new_store)


def set_company_currency(ws, conf, database):
    """Give the database's company the seed plans' currency, before it has any journal
    entry: the manager then invoices the plans in its own currency, and a template's
    standby databases serve the plans of their currency."""
    proc = subprocess.run(
        ws.odoo_cmd(conf, "-d", database, "--no-http", "--log-level=warn", command="shell"),
        input="env.company.currency_id = env.ref('base.%s')\nenv.cr.commit()\n"
              % PLAN_CURRENCY,
        text=True, capture_output=True, cwd=ws.repo, env=ws.child_env(), check=False)
    if proc.returncode:
        raise ToolError("setting the currency of %s failed:\n%s"
                        % (database, proc.stderr[-2000:]))
    ws.say("%s: company currency %s (the seed plans')" % (database, PLAN_CURRENCY))


def start_mail_catcher(ws):
    """A loopback SMTP server that keeps every mail in .local/mail and prints its links;
    returns the odoo.conf options that send Odoo's mail there."""
    port = pgcluster.free_port()
    folder = ws.local / "mail"
    proc = subprocess.Popen([str(ws.python), str(Path(__file__).with_name("mailcatcher.py")),
                             str(folder), str(port)], cwd=ws.repo, env=ws.child_env())
    ws.children.append(proc)
    ws.say("mail: Odoo's outgoing mail is caught on 127.0.0.1:%d, kept in %s (nothing leaves "
           "this machine); each mail's links are printed here" % (port, folder))
    return {"smtp_server": "127.0.0.1", "smtp_port": str(port)}


#: Extra idempotent setup steps, ``fn(ws, run, conf)``, run after the manager
#: database exists and before the server starts.
SETUP_STEPS = [ensure_manager_db, ensure_blank_template]


#: The currency the seed plans are priced in.
PLAN_CURRENCY = "EUR"


def provision_demo(ws, conf, port):
    """Through ``odoo shell``: lock the template, provision "demo", print how to reach it."""
    script = (Path(__file__).with_name("demo_shell.py")).read_text(encoding="utf-8")
    proc = subprocess.Popen(ws.odoo_cmd(conf, "-d", MANAGER_DB, "--no-http", "--log-level=warn",
                                        command="shell"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ws.repo, env=ws.child_env())
    ws.children.append(proc)  # killed if the user stops ./dev run meanwhile
    stdout, stderr = proc.communicate(script)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("SAAS_DEMO ")), None)
    if not line:
        ws.say("demo: provisioning could not be started:\n" + stderr[-2000:])
        return
    demo = json.loads(line[len("SAAS_DEMO "):])
    if demo["state"] != "active":
        ws.say("demo: provisioning ended in state %s: %s" % (demo["state"], demo["error"]))
        return
    ws.say("demo instance ready (%.2f s): %s/odoo  login %s; choose its password at "
           "%s (single use)" % (demo["seconds"] or 0, demo["url"], demo["login"],
                                demo["welcome_url"]))
    ws.say("sign-up: http://%s:%d/saas/pricing  (the Blank template keeps %d standby "
           "databases; the verification mail's link is printed above when it is sent)"
           % (MANAGER_DB, port, demo["pool_size"]))


def serve(ws, conf, port):
    """Odoo in the foreground; Ctrl-C stops it gracefully."""
    ws.say(
        "\n".join(
            [
                "",
                "SaaS Manager is starting: http://%s:%d/odoo  (login: admin, password: admin)"
                % (MANAGER_DB, port),
                "Any browser resolves *.localhost to this machine. Stop with Ctrl-C.",
                "",
            ]
        )
    )
    # Ctrl-C means "stop everything cleanly", even when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Odoo gets its own session so that the terminal's Ctrl-C reaches only us and
    # Odoo receives exactly one SIGINT (a second one would force a hard stop).
    # "-d": a threaded Odoo runs the crons of loaded registries only; loading the
    # manager's at start lets its runner work before anyone opens a page.
    proc = subprocess.Popen(ws.odoo_cmd(conf, "-d", MANAGER_DB), cwd=ws.repo,
                            env=ws.child_env(), start_new_session=True)
    threading.Thread(target=provision_demo, args=(ws, conf, port), daemon=True).start()
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_odoo(proc)


def stop_odoo(proc):
    """One SIGINT (graceful shutdown), then SIGKILL after 30 s; never leaves Odoo behind."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the master and its workers
        proc.wait()


def dev_offsite_store(ws):
    """The dev odoo.conf's off-site options: moto's server and its bucket (None without moto)."""
    s3 = ws.start_s3()
    if not s3:
        return None
    s3.create_bucket(s3server.DEV_BUCKET)
    ws.say("s3: off-site copies go to bucket %s on %s, in memory: they are lost when ./dev run "
           "stops" % (s3server.DEV_BUCKET, s3.endpoint))
    return s3.dev_options()


def main(ws, run, port=8069, routing="host", workers=0):
    if not pgcluster.port_is_free(port) or not pgcluster.port_is_free(port + 3):
        raise ToolError(
            "port %d (HTTP) or %d (websocket) on 127.0.0.1 is busy; "
            "stop what uses it or pass --port N" % (port, port + 3)
        )
    ws.find_odoo(required=True)
    ws.prepare()
    try:
        offsite = dev_offsite_store(ws)
        conf = ws.local / "odoo.conf"
        write_conf(
            conf,
            odoo=ws.odoo,
            addons_dir=ws.addons_dir,
            data_dir=ws.data_dir,
            pg=ws.pg,
            http_port=port,
            routing=routing,
            workers=workers,
            offsite=offsite,
            # Instances are reached on this server's port, without TLS.
            extra={"saas_public_scheme": "http", "saas_public_port": str(port),
                   **start_mail_catcher(ws)},
        )
        for step in SETUP_STEPS:
            step(ws, run, conf)
        return serve(ws, conf, port)
    finally:
        ws.close()
