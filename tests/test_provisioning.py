import os
import shutil
import subprocess
import tempfile
import uuid
from unittest.mock import patch

import odoorpc
import psycopg2

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tools import config, mute_logger

from ..engine import customize, pg, proxy
from ..models.saas_instance_provisioning import PROVISION_STEPS, ProvisionRun
from .common import OPERATION_LOGGER, ClonedTemplateCase, assert_nowhere_in_database

INSTANCE_LOGGER = OPERATION_LOGGER
real_new_password = customize.new_password


@tagged("post_install", "-at_install")
class TestProvisioning(ClonedTemplateCase):
    """Provision for real: clone, filestore, sanitize, customize over JSON-RPC, proxy."""

    @classmethod
    def prepare_template(cls):
        cls.tpl_identity = cls.read_identity(cls.tpl_db)

    @classmethod
    def read_identity(cls, database):
        conn = psycopg2.connect(dbname=database, **cls.pg_params)
        try:
            with conn.cursor() as cr:
                cr.execute("SELECT key, value FROM ir_config_parameter WHERE key IN "
                           "('database.uuid', 'database.secret', 'web.base.url')")
                return dict(cr.fetchall())
        finally:
            conn.close()

    # -- the happy path ------------------------------------------------------------------
    def test_provision_end_to_end(self):
        instance = self.new_instance()
        instance.action_provision()
        self.assertEqual(instance.state, "provisioning", "the request only queues the job")
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        database = instance.database_name
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, database))
            self.assertEqual(pg.owner(conn, database), config["db_user"])
        clone_file = os.path.join(config.filestore(database), "marker")
        self.assertTrue(os.path.samefile(
            clone_file, os.path.join(config.filestore(self.tpl_db), "marker")), "hardlinked")
        identity = self.read_identity(database)
        self.assertNotEqual(identity["database.uuid"], self.tpl_identity["database.uuid"])
        self.assertNotEqual(identity["database.secret"], self.tpl_identity["database.secret"])
        self.assertEqual(identity["web.base.url"], "https://%s.saas.test" % instance.subdomain)
        operation = self.last_operation(instance, "provision")
        self.assertEqual((operation.state, operation.attempt), ("done", 1))
        self.assertEqual(operation.step_ids.mapped("name"), list(PROVISION_STEPS))
        timed = {step.name: step.seconds for step in operation.step_ids}
        self.assertGreater(timed["clone"], 0)
        self.assertGreater(timed["customize"], 0)
        self.assertAlmostEqual(operation.seconds, sum(operation.step_ids.mapped("seconds")),
                               delta=0.01)

        client = self.rpc_login(instance, "owner@acme.test", self.set_customer_password(instance))
        user = client.env.user
        self.assertEqual(user.login, "owner@acme.test")
        self.assertEqual(user.company_id.name, "Acme Test")
        self.assertEqual(user.company_id.city, "Brussels")
        self.assertEqual(user.company_id.currency_id.name, "EUR")
        self.assertTrue(client.execute_kw("res.users", "has_group",
                                          [[user.id], "base.group_system"]))
        with self.assertRaises(odoorpc.error.RPCError):
            self.rpc_login(instance, "admin", "admin")

    def test_customer_values_set_and_no_credential_left(self):
        """Company and administrator as the ORM sets them (language activated first), the
        one-time API key gone, and no user with a password until the welcome link."""
        self.env["res.lang"]._activate_lang("fr_FR")
        customer = self.customer.copy({"name": "Acme Fr", "email": "owner@acme-fr.test",
                                       "phone": "+32 2 555 00 00", "street": "Rue Neuve 1",
                                       "zip": "1000", "lang": "fr_FR", "tz": "Europe/Brussels"})
        instance = self.new_instance(partner_id=customer.id)
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        conn = psycopg2.connect(dbname=instance.database_name, **self.pg_params)
        try:
            with conn.cursor() as cr:
                cr.execute("SELECT count(*) FROM res_users_apikeys")
                self.assertEqual(cr.fetchone()[0], 0, "the provisioning key is revoked")
                cr.execute("SELECT login FROM res_users WHERE password IS NOT NULL")
                self.assertEqual(cr.fetchall(), [], "nobody can log in yet")
        finally:
            conn.close()
        client = self.rpc_login(instance, "owner@acme-fr.test",
                                self.set_customer_password(instance))
        user = client.env.user
        self.assertEqual((user.name, user.lang, user.tz, user.partner_id.email),
                         ("Acme Fr", "fr_FR", "Europe/Brussels", "owner@acme-fr.test"))
        company = user.company_id
        self.assertEqual((company.name, company.partner_id.name, company.email, company.phone,
                          company.street, company.zip, company.city, company.country_id.code,
                          company.currency_id.name),
                         ("Acme Fr", "Acme Fr", "owner@acme-fr.test", "+32 2 555 00 00",
                          "Rue Neuve 1", "1000", "Brussels", "BE", "EUR"))
        self.assertTrue(client.execute_kw("res.currency", "search",
                                          [[("name", "=", "EUR")]]), "EUR is active")

    def test_no_password_or_live_link_is_stored(self):
        """The generated password lives in memory only, and the welcome link's token is
        nowhere in the manager's database once the mail went out."""
        generated = []

        def new_password():
            generated.append(real_new_password())
            return generated[-1]

        instance = self.new_instance()
        instance.action_provision()
        with patch.object(customize, "new_password", new_password):
            self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        self.assertEqual(len(generated), 1)
        assert_nowhere_in_database(self, self.env.cr, [generated[0], "/saas/welcome#"])
        self.assertIn("Welcome link e-mailed", str(instance.message_ids[0].body))

    # -- failures -------------------------------------------------------------------
    def test_failure_at_each_step_leaves_nothing(self):
        Instance = type(self.env["saas.instance"])
        for step in PROVISION_STEPS:
            with self.subTest(step=step):
                instance = self.new_instance()
                before = self.databases()
                original = getattr(Instance, "_provision_%s" % step)

                def failing(record, run, original=original, step=step):
                    original(record, run)
                    raise RuntimeError("injected failure after %s" % step)

                with patch.object(Instance, "_provision_%s" % step, failing), \
                        mute_logger(INSTANCE_LOGGER):
                    instance.action_provision()
                    self.run_operations()
                self.assertEqual(instance.state, "failed")
                self.assertIn("injected failure after %s" % step, self.op_error(instance))
                self.assertEqual(self.databases(), before, "no orphan database")
                self.assertFalse(os.path.exists(config.filestore(instance.database_name)))
                self.assertFalse(instance.owned_database)

    def test_retry_after_failure_converges(self):
        instance = self.new_instance()
        with patch.object(type(instance), "_provision_customize",
                          side_effect=RuntimeError("server down")), \
                mute_logger(INSTANCE_LOGGER):
            instance.action_provision()
            self.run_operations()
        self.assertEqual(instance.state, "failed")
        instance.action_provision()  # the Retry button
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))

    def test_crash_after_clone_converges(self):
        """A worker killed mid-way leaves a database it recorded as its own: the next run
        removes it and starts clean."""
        instance = self.new_instance()
        instance.action_provision()
        instance._provision_clone(ProvisionRun("x"))  # then the process "dies"
        self.assertEqual(instance.owned_database, instance.database_name)
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))

    def test_invalid_names_create_nothing(self):
        before = self.databases()
        for subdomain in ('x"; DROP DATABASE postgres; --', "UPPER", "a_b", "www", "-x",
                          self.tpl_db):
            with self.subTest(subdomain=subdomain), self.assertRaises(ValidationError):
                self.env["saas.instance"].create({
                    "name": "bad", "partner_id": self.customer.id, "subdomain": subdomain,
                    "template_id": self.template.id,
                    "plan_id": self.env.ref("saas_manager.plan_starter").id})
        self.assertEqual(self.databases(), before)

    def test_existing_database_is_never_dropped(self):
        instance = self.new_instance()
        with pg.maintenance(self.pg_params) as conn:
            pg.clone(conn, self.tpl_db, instance.database_name)
        with mute_logger(INSTANCE_LOGGER):
            instance.action_provision()
            self.run_operations()
        self.assertEqual(instance.state, "failed")
        self.assertIn("already exists", self.op_error(instance))
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, instance.database_name))

    def test_two_provisions_of_one_name_make_one_database(self):
        first = self.new_instance(subdomain="twice%s" % uuid.uuid4().hex[:6])
        first.action_provision()
        self.run_operations()
        with self.assertRaises(ValidationError):
            self.new_instance(subdomain=first.subdomain)
        with self.assertRaises(UserError):
            first.action_provision()

    def test_unready_template_is_refused(self):
        self.template.action_unlock()
        self.addCleanup(self.template.action_lock)
        instance = self.new_instance()
        with self.assertRaises(UserError):
            instance.action_provision()
        self.assertEqual(instance.state, "draft")

    # -- proxy ------------------------------------------------------------------------
    def test_nginx_configuration_is_valid_and_rolled_back_when_refused(self):
        if not shutil.which("nginx"):
            self.skipTest("nginx is not installed")
        folder = tempfile.mkdtemp(prefix="saas-nginx-")
        self.addCleanup(shutil.rmtree, folder, True)
        cert, key = self.self_signed(folder)
        main_conf = os.path.join(folder, "nginx.conf")
        with open(main_conf, "w") as handle:
            handle.write("pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n"
                         "    access_log off;\n    include %s/sites/*.conf;\n}\n"
                         % (folder, folder))
        os.makedirs(os.path.join(folder, "sites"))
        check = "nginx -t -q -p %s -c %s" % (folder, main_conf)
        options = dict(config.options, saas_proxy_conf_dir=os.path.join(folder, "sites"),
                       saas_proxy_validate_command=check,
                       # No nginx runs here: "reload" re-validates, the same code path.
                       saas_proxy_reload_command=check,
                       saas_proxy_certificate=cert, saas_proxy_certificate_key=key,
                       saas_proxy_domain_certificate=cert,
                       saas_proxy_domain_certificate_key=key)
        self.patch(config, "options", options)
        instance = self.new_instance(custom_domain="erp.acme-test.com")
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        custom = os.path.join(folder, "sites", proxy.INSTANCE_FILE % instance.subdomain)
        with open(custom) as handle:
            text = handle.read()
        self.assertIn("server_name erp.acme-test.com;", text)
        self.assertIn("proxy_set_header Host %s;" % instance.host, text)
        self.assertTrue(os.path.exists(os.path.join(folder, "sites", proxy.WILDCARD_FILE)))
        proxy.run_command("nginx -t -q -p %s -c %s" % (folder, main_conf), "check")

        # A certificate nginx cannot load: validation fails, nothing is left behind.
        options["saas_proxy_domain_certificate"] = os.path.join(folder, "missing.pem")
        broken = self.new_instance(custom_domain="shop.acme-test.com")
        with mute_logger(INSTANCE_LOGGER):
            broken.action_provision()
            self.run_operations()
        self.assertEqual(broken.state, "failed")
        self.assertIn("nginx validation", self.op_error(broken))
        self.assertFalse(os.path.exists(
            os.path.join(folder, "sites", proxy.INSTANCE_FILE % broken.subdomain)))
        with pg.maintenance(self.pg_params) as conn:
            self.assertFalse(pg.exists(conn, broken.database_name))

    @staticmethod
    def self_signed(folder):
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=*.saas.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        return cert, key

    # -- who may drop what ----------------------------------------------------------------
    def test_operational_fields_are_not_writable_by_users(self):
        manager = self.env["res.users"].create({
            "name": "Mgr", "login": "prov_mgr_%s" % uuid.uuid4().hex[:6],
            "groups_id": [(4, self.env.ref("saas_manager.group_saas_manager").id)]})
        instance = self.new_instance()
        for values in ({"state": "draft"}, {"owned_database": "postgres"},
                       {"database_name": "postgres"}, {"subdomain_released": True}):
            with self.subTest(values=values), self.assertRaises(AccessError):
                instance.with_user(manager).write(values)
        with self.assertRaises(AccessError):
            self.env["saas.instance"].with_user(manager).create({
                "name": "x", "subdomain": "x%s" % uuid.uuid4().hex[:6],
                "partner_id": self.customer.id, "template_id": self.template.id,
                "plan_id": self.env.ref("saas_manager.plan_starter").id,
                "owned_database": self.tpl_db})

    def test_a_database_without_our_marker_is_never_dropped(self):
        """Even when the instance believes it owns the name (crash between the ownership
        record and CREATE DATABASE, and someone else took the name meanwhile)."""
        instance = self.new_instance()
        with pg.maintenance(self.pg_params) as conn:
            pg.clone(conn, self.tpl_db, instance.database_name)
        instance.write({"owned_database": instance.database_name})
        with mute_logger(INSTANCE_LOGGER):
            instance.action_provision()
            self.run_operations()
        self.assertEqual(instance.state, "failed")
        self.assertIn("marker", self.op_error(instance))
        with pg.maintenance(self.pg_params) as conn:
            self.assertTrue(pg.exists(conn, instance.database_name))

    def test_clone_is_hidden_from_odoo_until_sanitized(self):
        instance = self.new_instance()
        instance.action_provision()
        seen = {}
        original = type(instance)._provision_sanitize

        def spy(record, run):
            with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
                cr.execute("SELECT datistemplate FROM pg_database WHERE datname = %s",
                           [record.database_name])
                seen["hidden"] = cr.fetchone()[0]
            return original(record, run)

        with patch.object(type(instance), "_provision_sanitize", spy):
            self.run_operations()
        self.assertTrue(seen["hidden"], "Odoo lists no template database: not servable yet")
        self.assertEqual(instance.state, "active", self.op_error(instance))
        with pg.maintenance(self.pg_params) as conn, conn.cursor() as cr:
            cr.execute("SELECT datistemplate FROM pg_database WHERE datname = %s",
                       [instance.database_name])
            self.assertFalse(cr.fetchone()[0])

    def test_custom_domain_cannot_take_another_instance_host(self):
        with self.assertRaises(ValidationError):
            self.new_instance(custom_domain="other.saas.test")

    # -- servers and template deployments ----------------------------------------------
    def test_instance_on_the_local_server_clones_its_deployment(self):
        local = self.env.ref("saas_manager.server_local")
        deployment = self.template._saas_clone_source(local)
        self.assertEqual((deployment.database_name, deployment.revision),
                         (self.tpl_db, self.template.revision))
        instance = self.new_instance()
        self.assertEqual(instance.server_id, local)
        self.assertTrue(instance._provision(), instance.operation_error)
        self.assertEqual(instance.template_revision, deployment.revision)
        self.assertGreaterEqual(local.instance_count, 1)
        local.action_measure()
        self.assertGreater(local.disk_used_mb, 1, "the clone's database and filestore")

    def test_full_server_or_missing_deployment_is_refused(self):
        local = self.env.ref("saas_manager.server_local")
        occupant = self.new_instance()
        occupant.sudo().write({"state": "active", "owned_database": occupant.database_name})
        local.max_instances = local.instance_count
        instance = self.new_instance()
        before = self.databases()
        with mute_logger(INSTANCE_LOGGER, OPERATION_LOGGER):
            self.assertFalse(instance._provision())
        self.assertEqual(instance.state, "failed")
        self.assertIn("is full", instance.operation_error)
        local.max_instances = 0
        self.template._saas_clone_source(local).sudo().state = "outdated"
        with mute_logger(INSTANCE_LOGGER, OPERATION_LOGGER):
            self.assertFalse(instance._provision())
        self.assertIn("no ready deployment", instance.operation_error)
        self.assertEqual(self.databases(), before, "nothing was created")
