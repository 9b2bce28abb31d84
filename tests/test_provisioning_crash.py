import secrets
import threading
import time
import uuid

import psycopg2

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..engine import pg
from ..models.saas_instance import PENDING_DATABASE
from .common import ClonedTemplateCase, build_template_database
from .test_provisioning import INSTANCE_LOGGER

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
                self.env["saas.instance"]._cron_provision()  # the next run
                self.assertEqual(instance.state, "active", instance.last_error)
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
            self.env["saas.instance"]._cron_provision()
        self.assertEqual(instance.state, "failed")
        self.assertIn("already exists", instance.last_error)
        self.assertTrue(self.database_exists(instance), "left untouched")


@tagged("post_install", "-at_install")
class TestConcurrentRunners(ClonedTemplateCase):
    """Two real runners (threads with their own transactions) on a manager database
    whose data is committed, as two cron workers are."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager_db = "saas_tpl_test_%s" % uuid.uuid4().hex[:8]
        cls.addClassCleanup(cls.drop_databases, [cls.manager_db])
        build_template_database(cls.manager_db, "saas_manager")
        cls.manager = Registry(cls.manager_db)

    def queue_instance(self):
        with self.manager.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["ir.config_parameter"].set_param("saas.base_domain", "saas.test")
            template = env["saas.template"].create({
                "name": "Runner template", "code": "runner_%s" % self.tpl_db[-8:],
                "database_name": self.tpl_db, "module_names": "base", "state": "ready",
                "admin_login": "admin"})
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
        api.Environment(cr, SUPERUSER_ID, {})["saas.instance"]._cron_provision()

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
