import os
import shutil
import signal
import time
import uuid
from functools import partial

import psycopg2
from passlib.context import CryptContext
from psycopg2 import sql

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools import config, mute_logger

from ..engine import odoo_process, pg
from ..models import saas_template
from .common import OPERATION_LOGGER, NameChecks, OperationChecks, ServerKeyCase

TEMPLATE_LOGGER = "odoo.addons.saas_manager.models.saas_template_build"


@tagged("post_install", "-at_install")
class TestTemplateLifecycle(OperationChecks, NameChecks, ServerKeyCase, TransactionCase):
    """Build, lock, clone, unlock, refresh and drop a real template database."""

    def setUp(self):
        super().setUp()
        self.pg_params = self.env["saas.template"]._saas_pg_params()
        self.made = []
        self.addCleanup(self.drop_made)

    def drop_made(self):
        with pg.maintenance(self.pg_params) as conn:
            for name in self.made:
                pg.drop(conn, name)
        for name in self.made:
            shutil.rmtree(config.filestore(name), ignore_errors=True)

    def new_template(self, modules):
        name = "saas_tpl_test_%s" % uuid.uuid4().hex[:8]
        self.made.append(name)
        return self.env["saas.template"].create({
            "name": "T %s" % name, "code": name[-8:], "database_name": name,
            "module_names": modules})

    def build(self, template, timeout=900):
        """Run the build cron until the build ended, as its own re-triggers would."""
        deadline = time.monotonic() + timeout
        self.run_operations()
        while template.state == "building" and time.monotonic() < deadline:
            time.sleep(0.5)
            self.run_operations()

    def exists(self, name):
        with pg.maintenance(self.pg_params) as conn:
            return pg.exists(conn, name)

    def test_blank_template_lifecycle(self):
        template = self.new_template("base,mail")
        template.action_build()
        self.assertEqual(template.state, "building", "queued, not built in the request")
        self.build(template)
        self.assertEqual(template.state, "configuring", template.build_log)
        self.assertTrue(self.exists(template.database_name))
        self.assertIn("mail", template.installed_modules.split(", "))
        self.assertTrue(template.odoo_version.startswith("18.0"))
        self.assertGreater(template.size_mb, 5)
        self.assertGreater(template.build_seconds, 0)
        # the generated admin password works (hash verified as Odoo would)
        conn = psycopg2.connect(dbname=template.database_name, **self.pg_params)
        with conn.cursor() as cr:
            cr.execute("SELECT password FROM res_users WHERE login = 'admin'")
            stored = cr.fetchone()[0]
        conn.close()
        self.assertTrue(CryptContext(["pbkdf2_sha512"]).verify(template.admin_password, stored))
        self.assertNotEqual(template.admin_password, "admin")

        template.action_lock()
        self.assertEqual((template.state, template.revision), ("ready", 1))
        local = self.env.ref("saas_manager.server_local")
        self.assertEqual(template.server_id, local, "built at home: the local server")
        deployment = template.deployment_ids
        self.assertEqual((deployment.server_id, deployment.database_name, deployment.state,
                          deployment.revision), (local, template.database_name, "ready", 1))
        self.assertTrue(deployment.deployed_at)
        with pg.maintenance(self.pg_params) as conn:
            self.assertFalse(pg.connections_allowed(conn, template.database_name))
            clone = template.database_name + "_clone"
            self.made.append(clone)
            pg.clone(conn, template.database_name, clone)
            self.assertTrue(pg.exists(conn, clone))

        template.action_unlock()
        self.assertEqual(template.state, "configuring")
        self.assertEqual(deployment.state, "outdated", "being changed: not cloned from")
        with self.assertRaises(UserError):
            template._saas_clone_source(local)
        template.action_refresh()
        self.build(template)
        self.assertEqual(template.state, "configuring", template.build_log)
        self.assertIn("base", template.installed_modules.split(", "))
        safety = self.env["saas.backup"].search([("template_id", "=", template.id)])
        self.assertEqual((safety.kind, safety.operation_id.kind), ("before_operation", "refresh"),
                         "the template as it was before the refresh is kept")

        wizard = self.env["saas.template.delete"].create({"template_id": template.id,
                                                          "drop_database": True})
        database = template.database_name
        wizard.action_confirm()
        self.assertFalse(template.exists())
        self.assertFalse(self.exists(database))
        made = self.env["saas.backup"].search([("database_name", "=", database)])
        self.assertEqual(sorted(made.mapped(lambda b: (b.kind, b.source))),
                         [("before_operation", "template"), ("final", "template")],
                         "a safety backup before the refresh, a final one before the drop")
        for path in made.mapped("dump_path") + made.mapped("filestore_path"):
            self.assertTrue(os.path.isfile(path))
            os.remove(path)

    def test_failed_build_leaves_no_database(self):
        template = self.new_template("base,no_such_module_xyz")
        template.action_build()
        with mute_logger(TEMPLATE_LOGGER, OPERATION_LOGGER):
            self.build(template)
        self.assertEqual(template.state, "error")
        self.assertIn("no_such_module_xyz", template.build_log)
        self.assertFalse(self.exists(template.database_name))
        self.assertFalse(template.database_owned)

    def test_interrupted_build_is_rebuilt_from_scratch(self):
        template = self.new_template("base")
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(
                template.database_name)))  # what a killed build leaves behind
        template.write({"database_owned": True})
        template._queue_build("install")
        self.build(template)
        self.assertEqual(template.state, "configuring", template.build_log)
        self.assertIn("base", template.installed_modules.split(", "))

    def test_build_runs_detached_and_is_collected_by_a_later_run(self):
        """The cron starts the process and returns; the process outlives the cron run
        (as it outlives a killed worker) and a later run collects it."""
        template = self.new_template("base")
        template.action_build()
        self.run_operations()
        self.assertEqual(template.state, "building", "the cron did not wait")
        paths = template._build_paths()
        self.assertTrue(odoo_process.is_running(template.build_pid, paths["status"]))
        self.assertNotEqual(os.getpgid(template.build_pid), os.getpgid(0), "own session")
        self.build(template)
        self.assertEqual(template.state, "configuring", template.build_log)
        self.assertFalse(template.build_pid)

    def test_demo_users_of_a_built_template_have_no_password(self):
        """The template is reachable at its host while it is configured: only its
        administrator can sign in, not demo/demo."""
        template = self.new_template("base")
        template.with_demo = True
        template.action_build()
        self.build(template)
        self.assertEqual(template.state, "configuring", template.build_log)
        with template._template_cursor() as cr:
            cr.execute("SELECT login FROM res_users WHERE password IS NOT NULL")
            self.assertEqual([row[0] for row in cr.fetchall()], [template.admin_login])
            cr.execute("SELECT count(*) FROM res_users WHERE login = 'demo'")
            self.assertEqual(cr.fetchone()[0], 1, "the demo user is there, without password")

    def test_cancel_stops_the_process_and_removes_the_database(self):
        template = self.new_template("base,mail")
        template.action_build()
        self.run_operations()
        pid, status = template.build_pid, template._build_paths()["status"]
        with mute_logger(TEMPLATE_LOGGER, OPERATION_LOGGER):
            template.action_cancel_build()
        self.assertEqual(template.state, "error")
        self.assertIn("Cancelled", template.build_log)
        deadline = time.monotonic() + 30
        while odoo_process.is_running(pid, status) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertFalse(odoo_process.is_running(pid, status), "nothing runs unowned")
        self.assertFalse(self.exists(template.database_name))

    def test_a_vanished_build_process_fails_cleanly(self):
        """Killed with its whole group (as a reboot would), the build ends in error on
        the next run and its half-built database is removed."""
        template = self.new_template("base")
        template.action_build()
        self.run_operations()
        os.killpg(template.build_pid, signal.SIGKILL)
        with mute_logger(TEMPLATE_LOGGER, OPERATION_LOGGER):
            self.build(template)
        self.assertEqual(template.state, "error")
        self.assertIn("without a status", template.build_log)
        self.assertFalse(self.exists(template.database_name))
        self.assertFalse(template.database_owned)

    def test_child_gets_the_server_options_not_only_the_config_file(self):
        python, launcher, _rcfile, options, env = self.env["saas.template"]._saas_odoo_child()
        args = odoo_process.command(python, launcher, None, "db", ["base"], options=options)
        self.assertIn("--addons-path=%s" % config["addons_path"], args)
        self.assertIn("--data-dir=%s" % config["data_dir"], args)
        self.assertIn("--db_port=%s" % config["db_port"], args)
        self.assertFalse([arg for arg in args if "password" in arg], "never on the command line")
        self.assertEqual(bool(env.get("PGPASSWORD")), bool(config.get("db_password")))

    def test_refresh_of_a_missing_database_creates_nothing(self):
        template = self.new_template("base")
        template.write({"state": "configuring", "database_owned": True})
        template.action_refresh()
        with mute_logger(TEMPLATE_LOGGER, OPERATION_LOGGER):
            self.build(template)
        self.assertEqual(template.state, "configuring")
        self.assertIn("does not exist", template.build_log)
        self.assertFalse(self.exists(template.database_name), "Odoo did not create it")

    def test_existing_database_is_not_adopted_nor_dropped(self):
        template = self.new_template("base")
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template.database_name)))
        template.action_build()
        with mute_logger(TEMPLATE_LOGGER, OPERATION_LOGGER):
            self.build(template)
        self.assertEqual(template.state, "error")
        self.assertIn("already exists", template.build_log)
        self.assertTrue(self.exists(template.database_name))

    def test_template_in_use_cannot_be_deleted(self):
        template = self.env.ref("saas_manager.template_blank")
        self.env["ir.config_parameter"].set_param("saas.base_domain", "example.com")
        self.env["saas.instance"].create({
            "name": "Used", "subdomain": "used%s" % uuid.uuid4().hex[:6],
            "partner_id": self.env.user.partner_id.id, "template_id": template.id,
            "plan_id": self.env.ref("saas_manager.plan_starter").id})
        with self.assertRaises(UserError) as caught:
            template.unlink()
        self.assertIn("still has instances", str(caught.exception))

    def test_access_url_follows_routing(self):
        template = self.new_template("base")
        set_param = self.env["ir.config_parameter"].set_param
        set_param("saas.base_domain", "example.com")
        set_param("saas.routing_mode", "subdomain")
        template.database_name = "tpl-x%s" % template.code
        self.made.append(template.database_name)
        self.assertEqual(template._access_url(),
                         "https://%s.example.com" % template.database_name)
        set_param("saas.routing_mode", "host")
        with self.assertRaises(UserError):
            template._access_url()
        template.database_name = "tpl-%s.example.com" % template.code
        self.assertEqual(template._access_url(), "https://%s" % template.database_name)

    def test_build_fields_are_not_writable_by_users(self):
        admin = self.env["res.users"].create({
            "name": "SaaS admin", "login": "tpl_admin_%s" % uuid.uuid4().hex[:6],
            "groups_id": [(4, self.env.ref("saas_manager.group_saas_admin").id)]})
        template = self.new_template("base")
        for values in ({"state": "building"}, {"database_owned": True},
                       {"build_mode": "install"}, {"revision": 7}):
            with self.subTest(values=values), self.assertRaises(AccessError):
                template.with_user(admin).write(values)

    # -- malformed names: one clear ValidationError, before any query ------------------------
    def test_malformed_template_names_are_refused_before_any_query(self):
        Template = self.env["saas.template"]
        good = {"name": "Hostile", "code": "hostile", "database_name": "saas_tpl_test_hostile",
                "module_names": "base"}
        before, databases = Template.with_context(active_test=False).search_count([]), None
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute("SELECT datname FROM pg_database")
            databases = {row[0] for row in cr.fetchall()}
        bad_values = {
            "database_name": ["postgres\n", "template1\n", "tpl\n", "tpl\x00", "\x00", "tpl\r",
                              "tpl\u2028", "t\u200dpl", "Tpl", "tpl name", "-tpl", "_tpl",
                              "tpl;drop", "tpl'", 'tpl"', "tpl/x", "tpl\\x", "\uff54pl",
                              "x" * 64, 5, ["tpl"], True],  # "": derived (test_data)
            "code": ["blank\n", "bl\x00ank", "Blank", "bl ank", "bl.ank", "b;", "", 7, ["x"],
                     "x" * 65],
            "lang": ["fr_BE\n", "fr\x00", "FR", "fr_be", 1],
            "module_names": ["base,ma\x00il", "base,ma\nil", "base;mail", "Base", 3],
        }
        for key, values in bad_values.items():
            for value in values:
                with self.subTest(key=key, value=value):
                    self.assertRefusedWithoutQuery(partial(Template.create, {**good, key: value}),
                                                   "not a valid|not a language|module|must be")
        for name in ("postgres", "template0", "template1"):
            self.assertRefusedWithoutQuery(
                partial(Template.create, {**good, "database_name": name}),
                "is a PostgreSQL database")
        template = self.new_template("base")
        for value in ("postgres\n", "tpl\x00", 5):
            with self.subTest(write=value):
                self.assertRefusedWithoutQuery(
                    partial(template.write, {"database_name": value}), "not a valid")
        self.assertRefusedWithoutQuery(partial(template.write, {"code": "x\x00"}), "not a valid")
        self.assertEqual(Template.with_context(active_test=False).search_count([]), before + 1)
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute("SELECT datname FROM pg_database")
            self.assertEqual({row[0] for row in cr.fetchall()}, databases)

    def test_template_patterns_use_whole_string_semantics(self):
        for pattern, good in ((saas_template.TEMPLATE_DB_RE, "postgres"),
                              (saas_template.CODE_RE, "blank"), (saas_template.LANG_RE, "fr_BE"),
                              (saas_template.MODULE_NAME_RE, "base")):
            self.assertTrue(pattern.fullmatch(good))
            self.assertFalse(pattern.match(good + "\n"), pattern.pattern)
