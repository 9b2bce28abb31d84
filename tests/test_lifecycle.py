import hashlib
import os

import psycopg2
import requests

from odoo.tests import tagged
from odoo.tools import config

from ..engine import backup
from .common import ServedClonesCase


@tagged("post_install", "-at_install")
class TestLifecycleEffects(ServedClonesCase):
    """Suspension, termination, usage and health on real clones served by a real Odoo."""

    def live_instance(self):
        instance = self.new_instance()
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        return instance

    def login_page(self, instance):
        """GET /web/login through the running Odoo, as a browser of the instance would."""
        return requests.get("http://127.0.0.1:%s/web/login" % config["http_port"],
                            headers={"Host": instance.host}, allow_redirects=False, timeout=30)

    def assertServed(self, instance, served=True):
        response = self.login_page(instance)
        detail = "%s %s" % (response.status_code, response.headers.get("Location") or
                            response.text[:300])
        login_form = response.status_code == 200 and 'name="login"' in response.text
        self.assertEqual(login_form, served, detail)

    def connect(self, instance):
        return psycopg2.connect(dbname=instance.database_name, **self.pg_params)

    # -- suspension ----------------------------------------------------------
    def test_suspension_blocks_the_database_and_odoo(self):
        instance = self.live_instance()
        self.assertServed(instance)
        session = self.connect(instance)  # a session open before the suspension
        instance.action_suspend()
        self.assertEqual((instance.state, instance.suspension_reason), ("suspended", "manual"))
        with self.assertRaisesRegex(psycopg2.OperationalError, "not currently accepting"):
            self.connect(instance).close()
        with self.assertRaises(psycopg2.Error):
            session.cursor().execute("SELECT 1")  # its backend was terminated
        session.close()
        self.assertServed(instance, served=False)  # Odoo no longer serves the database
        instance.action_reactivate()
        self.assertEqual(instance.state, "active")
        self.assertServed(instance)  # served again after reactivation
        client = self.rpc_login(instance, instance.admin_login,
                                self.set_customer_password(instance))
        self.assertEqual(client.env.user.login, instance.admin_login)

    # -- termination ---------------------------------------------------------
    def test_termination_leaves_a_backup_that_restores_identically(self):
        instance = self.live_instance()
        filestore = config.filestore(instance.database_name)
        with open(os.path.join(filestore, "customer-file"), "wb") as handle:
            handle.write(b"customer data" * 1000)
        with self.connect(instance) as conn:
            counts_before = backup.row_counts(conn)
        conn.close()
        wizard = self.env["saas.instance.terminate"].create(
            {"instance_id": instance.id, "confirmation": "wrong"})
        with self.assertRaisesRegex(Exception, "to confirm"):
            wizard.action_confirm()
        self.assertTrue(os.path.isdir(filestore), "a wrong confirmation changes nothing")
        wizard.confirmation = instance.subdomain
        wizard.action_confirm()
        self.run_operations()
        self.assertEqual(instance.state, "terminated")
        self.assertFalse(self.database_exists(instance))
        self.assertFalse(os.path.exists(filestore))
        final = instance.final_backup_id
        self.assertEqual((final.kind, final.source, final.database_name),
                         ("final", "instance", instance.database_name))
        self.assertEqual(final.operation_id.kind, "terminate")
        self.assertEqual(instance.backup_ids, final)
        for path, size, digest in ((final.dump_path, final.dump_size, final.dump_sha256),
                                   (final.filestore_path, final.filestore_size,
                                    final.filestore_sha256)):
            self.assertTrue(path.startswith(self.backup_dir))
            self.assertEqual(os.path.getsize(path), size)
            with open(path, "rb") as handle:
                self.assertEqual(hashlib.sha256(handle.read()).hexdigest(), digest)
        self.assertGreaterEqual(final.file_count, 2, "the customer's file and the marker")

        restored = "restored-%s.saas.test" % instance.subdomain
        self.addCleanup(self.drop_databases, [restored])
        backup.restore(self.pg_params, final._saas_engine_backup(), restored,
                       config.filestore(restored))
        conn = psycopg2.connect(dbname=restored, **self.pg_params)
        try:
            self.assertEqual(backup.row_counts(conn), counts_before)
        finally:
            conn.close()
        with open(os.path.join(config.filestore(restored), "customer-file"), "rb") as handle:
            self.assertEqual(handle.read(), b"customer data" * 1000)
        self.assertIn("marker", os.listdir(config.filestore(restored)))

    # -- usage and limits ----------------------------------------------------
    def test_usage_counts_only_active_internal_users_and_both_storage_parts(self):
        instance = self.live_instance()
        client = self.rpc_login(instance, instance.admin_login,
                                self.set_customer_password(instance))
        users = client.env["res.users"]
        users.create({"name": "Clerk", "login": "clerk@acme.test"})
        gone = users.create({"name": "Former", "login": "former@acme.test"})
        users.browse(gone).write({"active": False})
        portal = client.env.ref("base.group_portal").id
        users.create({"name": "Customer", "login": "portal@acme.test",
                      "groups_id": [(6, 0, [portal])]})
        with open(os.path.join(config.filestore(instance.database_name), "big"), "wb") as handle:
            handle.write(b"\0" * (2 * 2**20))
        instance.action_refresh_usage()
        self.assertEqual(instance.user_count, 2, "the customer's admin and the clerk")
        self.assertGreaterEqual(instance.filestore_mb, 2.0)
        self.assertGreater(instance.database_mb, 1.0)
        self.assertAlmostEqual(instance.storage_mb, instance.database_mb + instance.filestore_mb,
                               delta=0.11)

        self.env.ref("saas_manager.plan_starter").max_users = 1
        self.env["ir.config_parameter"].set_param("saas.limit_policy", "suspend")
        self.env["ir.config_parameter"].set_param("saas.limit_suspend_days", 0)
        self.env["saas.instance"]._cron_check_limits()
        self.assertTrue(instance.user_limit_exceeded)
        self.assertFalse(instance.storage_limit_exceeded)
        self.assertEqual((instance.state, instance.suspension_reason), ("suspended", "user_limit"))
        template = self.env.ref("saas_manager.mail_template_user_limit")
        subject = template._render_field("subject", instance.ids)[instance.id]
        self.assertIn(subject, instance.message_ids.mapped("subject"))
        self.env.ref("saas_manager.plan_starter").max_users = 5  # an upgrade, say
        self.env["saas.instance"]._cron_check_limits()
        self.assertEqual(instance.state, "active", "back under the limit: access restored")
        self.assertFalse(instance.user_limit_exceeded)
        self.assertTrue(self.connections_allowed(instance))

    # -- health --------------------------------------------------------------
    def test_health_check_and_alert_after_consecutive_failures(self):
        instance = self.live_instance()
        self.assertEqual(self.checks(instance).mapped("up"), [True], "checked when provisioned")
        self.checks(instance).unlink()  # the windows below count the cron's checks only
        self.env["ir.config_parameter"].set_param("saas.health_alert_failures", 2)
        self.env["saas.instance"]._cron_health()
        self.assertEqual(instance.health_status, "up", instance.health_error)
        self.assertGreater(instance.health_response_ms, 0)
        first = self.checks(instance)
        self.assertEqual(len(first), 1)
        self.assertEqual((first.up, first.response_ms, first.error, first.checked_at),
                         (True, instance.health_response_ms, False, instance.health_checked_at))
        self.assertEqual((instance.uptime_24h, instance.health_checks_24h), (100.0, 1))
        self.assertEqual(instance.response_p95_ms, first.response_ms)
        self.make_outage(instance)
        for _run in range(3):
            self.env["saas.instance"]._cron_health()
        self.assertEqual(instance.health_status, "down")
        self.assertEqual(instance.health_failures, 3)
        self.assertIn("database", instance.health_error)
        checks = self.checks(instance)
        self.assertEqual(checks.sorted("id").mapped("up"), [True, False, False, False])
        self.assertEqual(checks[0].error, instance.health_error)
        self.assertEqual((instance.uptime_24h, instance.uptime_7d, instance.uptime_30d),
                         (25.0, 25.0, 25.0))
        self.assertEqual(instance.response_p95_ms, first.response_ms, "failed checks left out")
        alerts = instance.activity_ids.filtered(lambda a: "is down" in (a.summary or ""))
        self.assertEqual(len(alerts), 1, "one alert per outage")

    def checks(self, instance):
        instance.invalidate_recordset()
        return self.env["saas.health.check"].search([("instance_id", "=", instance.id)])

