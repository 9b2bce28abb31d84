import logging
from unittest.mock import patch

from lxml import etree

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import config
from odoo.tools.safe_eval import safe_eval

from ..engine import health
from ..models.saas_instance import INSTANCE_STATES
from .common import LiveInstanceCase, SaasCase, ServedClonesCase

PROVISIONING_LOGGER = "odoo.addons.saas_manager.models.saas_instance_provisioning"


@tagged("post_install", "-at_install")
class TestPublicUrls(SaasCase):
    """One helper builds every public address from odoo.conf's scheme and port."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instance = cls.make_instance("pub")
        cls.host_template = cls.env["saas.template"].create(
            {"name": "Public", "code": "pub", "database_name": "tpl-pub.example.com"})

    def configure(self, scheme="", port=""):
        """odoo.conf as a restart with these options would read it (empty: not set)."""
        self.patch(config, "options", {**config.options, "saas_public_scheme": scheme,
                                       "saas_public_port": port})
        self.env.invalidate_all()

    def addresses(self):
        return (self.instance.url, self.instance.action_open()["url"],
                self.host_template._access_url())

    def test_https_without_port_by_default(self):
        self.instance.sudo().state = "active"
        self.assertEqual(self.addresses(), ("https://pub.example.com",
                                            "https://pub.example.com/odoo",
                                            "https://tpl-pub.example.com"))

    def test_scheme_and_port_from_odoo_conf_apply_to_existing_records(self):
        self.instance.sudo().state = "active"
        self.assertFalse(self.Instance._fields["url"].store, "follows odoo.conf when read")
        self.configure("http", "8069")
        self.assertEqual(self.addresses(), ("http://pub.example.com:8069",
                                            "http://pub.example.com:8069/odoo",
                                            "http://tpl-pub.example.com:8069"))
        self.configure("https", "443")
        self.assertEqual(self.instance.url, "https://pub.example.com", "the scheme's own port")

    def test_the_nginx_files_serve_the_public_scheme_and_port(self):
        settings = {"upstream": "127.0.0.1:8069", "websocket_upstream": "127.0.0.1:8072",
                    "certificate": "/etc/c.pem", "key": "/etc/k.pem",
                    "certificate_pattern": "/etc/{domain}.pem", "key_pattern": "/etc/{domain}.key"}
        self.instance.custom_domain = "erp.pub.org"
        self.configure("http", "8069")
        texts = self.instance._saas_proxy_texts(settings)
        self.assertEqual(len(texts), 2)
        for text in texts.values():
            self.assertIn("listen 8069;", text)
            self.assertNotIn("ssl", text)
        self.configure()
        for text in self.instance._saas_proxy_texts(settings).values():
            self.assertIn("listen 443 ssl;", text)
            self.assertIn("return 301 https://$host$request_uri;", text)

    def test_bad_values_are_refused_by_name(self):
        for scheme, port, key in (("ftp", "", "saas_public_scheme"),
                                  ("HTTPS", "", "saas_public_scheme"),
                                  ("", "80a", "saas_public_port"),
                                  ("", "70000", "saas_public_port")):
            with self.subTest(scheme=scheme, port=port):
                self.configure(scheme, port)
                with self.assertRaisesText(UserError, key):
                    self.instance.read(["url"])


@tagged("post_install", "-at_install")
class TestInstanceDeletion(SaasCase):
    """Only instances that serve no database can be deleted, however it is asked."""

    def test_each_state(self):
        for state, label in INSTANCE_STATES:
            with self.subTest(state=state):
                instance = self.make_instance("del-%s" % state)
                instance.sudo().state = state
                if state in ("draft", "failed", "terminated"):
                    instance.with_user(self.saas_manager).unlink()
                    self.assertFalse(instance.exists())
                    continue
                for who in (instance.with_user(self.saas_manager), instance.sudo()):
                    with self.assertRaisesText(UserError, "%s is %s: only draft, failed and "
                                               "terminated" % (instance.name, label)):
                        who.unlink()
                self.assertTrue(instance.exists())

    def test_a_failed_instance_that_still_owns_its_database(self):
        instance = self.make_instance("del-owning")
        instance.sudo().write({"state": "failed", "owned_database": instance.database_name})
        with self.assertRaisesText(UserError, "still owns the database"):
            instance.with_user(self.saas_manager).unlink()
        self.assertTrue(instance.exists())


@tagged("post_install", "-at_install")
class TestTerminatedInstanceForm(SaasCase):
    """The form offers no way into a terminated instance."""

    ENTRIES = ("//field[@name='url']", "//button[@name='action_open']",
               "//button[@name='action_login_as_admin']",
               "//button[@name='action_send_welcome']", "//page[@name='access']")

    def hidden(self, instance):
        """{xpath: whether the form hides it} for the record's values, as the web client
        evaluates ``invisible`` (the node's or any ancestor's)."""
        view = self.Instance.with_user(self.saas_manager).get_view(
            self.env.ref("saas_manager.saas_instance_view_form").id, "form")
        values = instance.read(list(view["models"]["saas.instance"]))[0]
        arch = etree.fromstring(view["arch"])
        shown = {}
        for path in self.ENTRIES:
            [node] = arch.xpath(path)
            shown[path] = any(safe_eval(element.get("invisible"), values)
                              for element in [node, *node.iterancestors()]
                              if element.get("invisible"))
        return shown

    def test_terminated_hides_the_url_open_and_credentials(self):
        instance = self.make_instance("gone")
        instance.sudo().write({"state": "active", "admin_login": "owner@acme.test"})
        self.assertEqual(set(self.hidden(instance).values()), {False}, "all there when active")
        instance.sudo().state = "terminated"
        self.assertEqual(set(self.hidden(instance).values()), {True})


@tagged("post_install", "-at_install")
class TestTerminationBilling(LiveInstanceCase):
    """At termination a subscription stops renewing; what it still invoices stays due."""

    def subscription(self, instance):
        sub = self.env["saas.subscription"].create(
            {"instance_id": instance.id, "skip_trial": True})
        sub.action_activate()
        self.assertEqual(sub.invoice_ids.mapped("state"), ["posted"])
        return sub

    def pay(self, invoices):
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoices.ids).create({})._create_payments()

    def notes(self, sub):
        return sub.message_ids.filtered(lambda m: "still due" in str(m.body))

    def test_terminated_with_an_unpaid_invoice(self):
        sub = self.subscription(self.make_live_instance("owing"))
        invoice = sub.invoice_ids
        sub.action_cancel()
        sub._terminate()  # the expiry cron's call once the grace days are over
        self.run_operations()
        self.assertEqual((sub.instance_id.state, sub.state), ("terminated", "terminated"),
                         self.op_error(sub.instance_id))
        self.assertFalse(sub.auto_renew)
        self.assertEqual((invoice.state, invoice.payment_state), ("posted", "not_paid"))
        self.assertEqual(sub.unpaid_invoice_ids, invoice)
        [note] = self.notes(sub)
        self.assertIn(invoice.name, str(note.body))
        self.assertIn("credit note", str(note.body))

    def test_terminated_paid_up_and_without_a_database(self):
        """A paid subscription gets no note; one whose instance never had a database is
        terminated the same way, without an operation."""
        for state, live in (("active", True), ("draft", False)):
            with self.subTest(instance=state):
                instance = (self.make_live_instance if live else self.make_instance)(
                    "paid-%s" % state)
                sub = self.subscription(instance)
                self.pay(sub.invoice_ids)
                sub.action_cancel()
                sub._terminate()
                self.run_operations()
                self.assertEqual(sub.state, "terminated", self.op_error(instance))
                self.assertFalse(sub.auto_renew)
                self.assertFalse(self.notes(sub))


@tagged("post_install", "-at_install")
class TestFirstMeasures(ServedClonesCase):
    """A provisioned instance is measured and checked at once, best-effort."""

    def provision(self):
        instance = self.new_instance()
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        return instance

    def checks(self, instance):
        return self.env["saas.health.check"].search([("instance_id", "=", instance.id)])

    def test_usage_and_health_right_after_provisioning(self):
        instance = self.provision()
        self.assertEqual(instance.user_count, 1, "the customer's administrator")
        self.assertGreater(instance.storage_mb, 1.0)
        self.assertTrue(instance.usage_checked_at)
        self.assertEqual(instance.health_status, "up", instance.health_error)
        self.assertEqual(self.checks(instance).mapped("up"), [True])
        self.assertEqual(self.checks(instance).checked_at, instance.health_checked_at)

    def test_a_failing_measure_is_noted_and_the_instance_stays_active(self):
        """Noted in the chatter and logged at INFO, never as a warning; the other
        measure is still taken."""
        Instance = type(self.env["saas.instance"])
        cases = ((patch.object(Instance, "_refresh_usage", side_effect=UserError("no disk")),
                  "Usage could not be measured yet", "health_checked_at"),
                 (patch.object(health, "check_all", side_effect=RuntimeError("no sockets")),
                  "The first health check failed", "usage_checked_at"))
        for failing, failure, still_measured in cases:
            with self.subTest(failure=failure):
                # logging.INFO, not "INFO": Odoo gives that name to its level 25 (RUNBOT).
                with failing, self.assertLogs(PROVISIONING_LOGGER, logging.INFO) as logs:
                    instance = self.provision()
                chatter = " ".join(instance.message_ids.mapped(lambda m: str(m.body)))
                self.assertIn(failure + " (", chatter)
                noted = [r.levelno for r in logs.records if failure in r.getMessage()]
                self.assertEqual(noted, [logging.INFO])
                self.assertFalse([r for r in logs.records if r.levelno >= logging.WARNING])
                self.assertTrue(instance[still_measured])
