import configparser
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg2

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine import pg
from ..models.saas_instance_provisioning import PENDING_DATABASE
from .common import ClonedTemplateCase, build_template_database, free_port
from .test_provisioning import INSTANCE_LOGGER

_logger = logging.getLogger(__name__)
#: Where a worker can die inside the clone step, in the order of its statements.
CLONE_CRASH_POINTS = ("recorded", "create_terminated", "created", "marked", "renamed")


@tagged("post_install", "-at_install")
class TestCloneCrashConvergence(ClonedTemplateCase):
    """A provisioning killed at any statement of its clone step converges on retry."""

    def interrupt_clone(self, instance, point):
        """Run the clone step's statements up to ``point`` on real connections, then stop
        as a killed worker does (nothing after it runs)."""
        pending = PENDING_DATABASE % (instance.id, secrets.token_hex(4))
        self.addCleanup(self.drop_databases, [pending])
        instance._provision_mark_owned(pending)
        if point == "recorded":
            return
        if point == "create_terminated":
            self.clone_with_backend_terminated(pending)
            return
        with pg.maintenance(self.pg_params) as conn:
            pg.clone(conn, self.tpl_db, pending, hidden=True)
            if point == "created":
                return  # the crash of the report: cloned, never marked
            pg.set_comment(conn, pending, instance._owner_marker())
            if point == "marked":
                return
            pg.rename(conn, pending, instance.database_name)

    def clone_with_backend_terminated(self, pending):
        """CREATE DATABASE whose backend is terminated from another session while it runs
        (or, if the copy wins the race, just after: both must converge)."""
        done, outcome = threading.Event(), []

        def clone():
            try:
                with pg.maintenance(self.pg_params) as conn:
                    pg.clone(conn, self.tpl_db, pending, hidden=True)
                outcome.append("copied first")
            except (pg.PgError, psycopg2.Error) as exc:
                outcome.append(exc)  # terminated: PostgreSQL rolled the CREATE back
            finally:
                done.set()

        worker = threading.Thread(target=clone)
        worker.start()
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            while not done.is_set():
                cr.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE query LIKE %s AND pid <> pg_backend_pid()",
                           ["CREATE DATABASE \"%s\"%%" % pending])
                time.sleep(0.005)
        worker.join()
        self.assertEqual(len(outcome), 1)

    def test_every_crash_point_converges_without_orphans(self):
        for point in CLONE_CRASH_POINTS:
            with self.subTest(point=point):
                instance = self.new_instance()
                before = self.databases()
                instance.action_provision()
                self.interrupt_clone(instance, point)
                self.run_operations()  # the next run
                self.assertEqual(instance.state, "active", self.op_error(instance))
                self.assertEqual(self.databases() - before, {instance.database_name},
                                 "no database left that nothing owns")
                self.assertEqual(instance.owned_database, instance.database_name)

    def test_a_foreign_database_under_the_final_name_is_never_dropped(self):
        instance = self.new_instance()
        instance.action_provision()
        self.interrupt_clone(instance, "recorded")
        with pg.maintenance(self.pg_params) as conn:
            pg.clone(conn, self.tpl_db, instance.database_name)  # somebody else's
        with mute_logger(INSTANCE_LOGGER):
            self.run_operations()
        self.assertEqual(instance.state, "failed")
        self.assertIn("already exists", self.op_error(instance))
        self.assertTrue(self.database_exists(instance), "left untouched")


@tagged("post_install", "-at_install")
class TestRealRunners(ClonedTemplateCase):
    """Real runners on a manager database whose data is committed: two threads with
    their own transactions (two cron workers), and a real prefork server killed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager_db = "saas_tpl_test_%s" % uuid.uuid4().hex[:8]
        cls.addClassCleanup(cls.drop_databases, [cls.manager_db])
        build_template_database(cls.manager_db, "saas_manager")
        cls.manager = Registry(cls.manager_db)
        cls.manager_template_id = cls.add_template()

    @classmethod
    def add_template(cls):
        """The class's template database, as a ready template of the manager (committed)."""
        with cls.manager.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["ir.config_parameter"].set_param("saas.base_domain", "saas.test")
            return env["saas.template"].create({
                "name": "Runner template", "code": "runner_%s" % cls.tpl_db[-8:],
                "database_name": cls.tpl_db, "module_names": "base", "state": "ready",
                "admin_login": "admin"}).id

    def queue_instance(self):
        with self.manager.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            template = env["saas.template"].browse(self.manager_template_id)
            partner = env["res.partner"].create({"name": "Racer", "email": "race@acme.test"})
            instance = env["saas.instance"].create({
                "name": "Race", "subdomain": "r%s" % uuid.uuid4().hex[:8],
                "partner_id": partner.id, "template_id": template.id,
                "plan_id": env.ref("saas_manager.plan_starter").id})
            self.addCleanup(self.drop_databases, [instance.database_name])
            instance.action_provision()
            return instance.id, instance.database_name

    def committed(self, query, args):
        """What the manager database holds now (autocommit: the latest commits)."""
        conn = psycopg2.connect(dbname=self.manager_db, **self.pg_params)
        conn.autocommit = True
        try:
            with conn.cursor() as cr:
                cr.execute(query, args)
                return cr.fetchone()
        finally:
            conn.close()

    def run_cron(self, cr):
        api.Environment(cr, SUPERUSER_ID, {})["saas.operation"]._cron_run()

    def test_a_runner_with_an_old_snapshot_does_not_undo_the_first(self):
        """B reads while A provisions (after A recorded the database), takes the lock
        once A is done: it must see A's result, not drop the new database."""
        instance_id, database = self.queue_instance()
        state_query = "SELECT state, owned_database FROM saas_instance WHERE id = %s"
        recorded, a_done, seen, errors = threading.Event(), threading.Event(), [], []

        def runner_a():
            try:
                with self.manager.cursor() as cr:
                    self.run_cron(cr)
            except Exception as exc:  # reported by the test below
                errors.append(("A", exc))
            finally:
                a_done.set()

        def runner_b():
            try:
                recorded.wait(120)
                with self.manager.cursor() as cr:
                    cr.execute(state_query, [instance_id])  # B's snapshot starts here
                    seen.append(cr.fetchone())
                    a_done.wait(300)
                    self.run_cron(cr)
            except Exception as exc:  # reported by the test below
                errors.append(("B", exc))

        threads = [threading.Thread(target=runner_a), threading.Thread(target=runner_b)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not a_done.is_set():
            if self.committed(state_query, [instance_id])[1] == database:
                break
            time.sleep(0.01)
        recorded.set()
        for thread in threads:
            thread.join(400)
        self.assertEqual(errors, [])
        self.assertEqual(seen, [("provisioning", database)],
                         "B's snapshot predates A's end (the race happened)")
        self.assertEqual(self.committed(state_query, [instance_id]), ("active", database))
        self.assertTrue(self.database_exists_named(database))

    def database_exists_named(self, name):
        with pg.maintenance(self.pg_params) as conn:
            return pg.exists(conn, name)

    # -- kill -9 of a real prefork Odoo while it provisions, then a restart ---------------
    def server_conf(self, workers=2):
        """The test server's configuration, serving the manager database only, with
        saas_manager server-wide; clones are customized through the test server."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(config.rcfile)
        options = parser["options"]
        options.update({
            "db_name": self.manager_db, "workers": str(workers), "max_cron_threads": "1",
            "http_port": str(free_port()), "gevent_port": str(free_port()),
            "server_wide_modules": "base,web,saas_manager",
            "saas_odoo_url": "http://127.0.0.1:%s" % config["http_port"],
            "saas_manager_key": config["saas_manager_key"]})
        folder = tempfile.mkdtemp(prefix="saas_server_")
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "odoo.conf")
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        return path, folder

    def start_server(self, conf, logfile):
        proc = subprocess.Popen(
            [sys.executable, sys.argv[0], "-c", conf, "--logfile", logfile],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.addCleanup(self.kill_server, proc)
        return proc

    @staticmethod
    def kill_server(proc):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def wait_for(self, predicate, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.01)
        return None

    def test_a_threaded_server_runs_queued_work_at_start(self):
        """Threaded (workers = 0, as ./dev run): the start-up wake-up must not take the
        cron thread's own connection away; queued work runs within seconds."""
        instance_id, database = self.queue_instance()
        state_query = "SELECT state, owned_database FROM saas_instance WHERE id = %s"
        conf, folder = self.server_conf(workers=0)
        self.start_server(conf, os.path.join(folder, "threaded.log"))
        done = self.wait_for(
            lambda: self.committed(state_query, [instance_id])[0] != "provisioning", 55)
        self.assertTrue(done, "ran before the cron thread's first 60 s sleep ended")
        self.assertEqual(self.committed(state_query, [instance_id]), ("active", database))

    def test_a_restart_resumes_and_completes_without_orphans(self):
        instance_id, database = self.queue_instance()
        state_query = "SELECT state, owned_database FROM saas_instance WHERE id = %s"
        conf, folder = self.server_conf()
        before = self.databases()
        first = self.start_server(conf, os.path.join(folder, "first.log"))
        owned = self.wait_for(lambda: self.committed(state_query, [instance_id])[1], 120)
        self.assertTrue(owned, "the first server started provisioning")
        self.kill_server(first)  # kill -9 of the whole server, mid-provisioning
        self.assertEqual(self.committed(state_query, [instance_id])[0], "provisioning")

        started = time.monotonic()
        self.start_server(conf, os.path.join(folder, "second.log"))
        done = self.wait_for(
            lambda: self.committed(state_query, [instance_id])[0] != "provisioning", 55)
        self.assertTrue(done, "resumed before the cron workers' first 60 s sleep ended")
        self.assertEqual(self.committed(state_query, [instance_id]), ("active", database))
        self.assertEqual(self.databases() - before, {database}, "no orphan database")
        operation_query = "SELECT state, attempt FROM saas_operation WHERE instance_id = %s"
        self.wait_for(lambda: self.committed(operation_query, [instance_id])[0] == "done", 30)
        self.assertEqual(self.committed(operation_query, [instance_id]), ("done", 2),
                         "one operation, interrupted once, resumed")
        self.assertEqual(self.committed(
            "SELECT count(*) FROM saas_operation_step s JOIN saas_operation o "
            "ON o.id = s.operation_id WHERE o.instance_id = %s AND s.name = 'interrupted' "
            "AND s.attempt = 2", [instance_id]), (1,), "the interruption is recorded")
        _logger.info("Restart to active instance: %.1f s (interrupted at %s)",
                     time.monotonic() - started, owned)
