import email
import re
import uuid
from datetime import timedelta
from unittest.mock import patch

from aiosmtpd.controller import Controller

import odoo
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from ..controllers.welcome import RATE_LIMIT
from .common import ClonedTemplateCase, assert_nowhere_in_database, free_port

LINK_RE = re.compile(r"/saas/welcome#([A-Za-z0-9_-]{43})")


class _Sink:
    """What a real SMTP server on loopback received."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # the name aiosmtpd calls
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


def _html(message):
    return "".join(part.get_payload(decode=True).decode() for part in message.walk()
                   if part.get_content_type() == "text/html")


@tagged("post_install", "-at_install")
class TestWelcomeLink(ClonedTemplateCase):
    """The customer's first access: a mailed single-use link, a page to choose the
    password, and no credential kept anywhere by the manager."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instance = cls.provisioned()

    @classmethod
    def provisioned(cls):
        instance = cls.new_instance_cls()
        instance.action_provision()
        cls.env["saas.operation"]._cron_run()
        assert instance.state == "active", instance.operation_error
        return instance

    @classmethod
    def new_instance_cls(cls):
        subdomain = "w%s" % uuid.uuid4().hex[:8]
        instance = cls.env["saas.instance"].create({
            "name": subdomain, "partner_id": cls.customer.id, "subdomain": subdomain,
            "template_id": cls.template.id,
            "plan_id": cls.env.ref("saas_manager.plan_starter").id})
        cls.addClassCleanup(cls.drop_databases, [instance.database_name])
        return instance

    def send_for_real(self, port):
        """``_send_welcome`` through Odoo's real SMTP path (tests normally skip it)."""
        self.env["ir.mail_server"].search([]).active = False
        self.env["ir.mail_server"].create({"name": "loopback", "smtp_host": "127.0.0.1",
                                           "smtp_port": port, "smtp_encryption": "none"})
        with patch.object(odoo.modules.module, "current_test", None):
            self.instance._send_welcome()

    def test_mail_carries_a_link_not_a_password_and_leaves_no_copy(self):
        sink, port = _Sink(), free_port()
        server = Controller(sink, hostname="127.0.0.1", port=port)
        server.start()
        try:
            self.send_for_real(port)
        finally:
            server.stop()
        self.assertEqual(len(sink.messages), 1)
        recipients, message = sink.messages[0]
        self.assertEqual(recipients, [self.customer.email])
        html = _html(message)
        self.assertIn(self.instance.admin_login, html)
        token = LINK_RE.search(html).group(1)
        self.assertNotIn("Password:", html)
        self.assertFalse(self.env["mail.mail"].sudo().search([("subject", "like",
                                                                self.instance.host)]))
        assert_nowhere_in_database(self, self.env.cr, [token])
        self.assertIn("Welcome link e-mailed", str(self.instance.message_ids[0].body))

    def test_smtp_down_drops_the_mail_and_says_so(self):
        with mute_logger("odoo.addons.mail.models.mail_mail",
                         "odoo.addons.base.models.ir_mail_server"):
            self.send_for_real(free_port())  # nothing listens there
        self.assertFalse(self.env["mail.mail"].sudo().search([("subject", "like",
                                                                self.instance.host)]))
        assert_nowhere_in_database(self, self.env.cr, ["/saas/welcome#"])
        self.assertIn("could not be sent", str(self.instance.message_ids[0].body))
        incident = self.env["saas.incident"].search(
            [("kind", "=", "mail"), ("instance_id", "=", self.instance.id)])
        self.assertEqual((len(incident), incident.state), (1, "open"), "the operator is told")
        self.assertTrue(incident.details, "with the reason")
        server = Controller(_Sink(), hostname="127.0.0.1", port=free_port())
        server.start()
        try:
            self.send_for_real(server.port)
        finally:
            server.stop()
        self.assertEqual(incident.state, "resolved", "the next mail that goes out closes it")

    def test_a_customer_mail_that_fails_opens_an_incident(self):
        self.env["ir.mail_server"].search([]).active = False
        self.env["ir.mail_server"].create({"name": "dead", "smtp_host": "127.0.0.1",
                                           "smtp_port": free_port(), "smtp_encryption": "none"})
        # Posted and sent at once, as in production, to a server that is not there.
        with patch.object(odoo.modules.module, "current_test", None), \
                mute_logger("odoo.addons.mail.models.mail_mail",
                            "odoo.addons.base.models.ir_mail_server"):
            self.instance._notify("saas_manager.mail_template_user_limit")
            self.env["mail.mail"].sudo().search([
                ("model", "=", "saas.instance"), ("res_id", "=", self.instance.id),
                ("state", "=", "outgoing")]).send(raise_exception=False)
        incident = self.env["saas.incident"].search(
            [("kind", "=", "mail"), ("instance_id", "=", self.instance.id)])
        self.assertEqual((len(incident), incident.state), (1, "open"))
        self.assertIn("exception", self.instance.message_ids[0].notification_ids.mapped(
            "notification_status"), "and the chatter shows it")

    def choose(self, token, password, confirm=None):
        page = self.url_open("/saas/welcome")
        self.assertEqual(page.status_code, 200)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return self.url_open("/saas/welcome", data={
            "csrf_token": csrf, "token": token, "password": password,
            "confirm": password if confirm is None else confirm}, allow_redirects=False)

    def test_the_page_sets_the_password_once(self):
        Link = self.env["saas.access.link"]
        token = Link._issue(self.instance, "welcome", self.instance.admin_login)
        self.assertIn("differ", self.choose(token, "Chosen-pass-1", "other-pass").text)
        self.assertIn("8 to 128", self.choose(token, "short").text)
        done = self.choose(token, "Chosen-pass-1")
        self.assertEqual(done.status_code, 303)
        self.assertEqual(done.headers["Location"], "%s/web/login?login=%s" % (
            self.instance.url, "owner%40acme.test"))
        client = self.rpc_login(self.instance, self.instance.admin_login, "Chosen-pass-1")
        self.assertEqual(client.env.user.login, self.instance.admin_login)
        self.assertIn("not valid", self.choose(token, "Another-pass-2").text, "single use")
        self.assertEqual(
            self.rpc_login(self.instance, self.instance.admin_login, "Chosen-pass-1").env.uid,
            client.env.uid, "the second attempt changed nothing")

    def test_expired_replaced_and_forged_links_are_refused(self):
        Link = self.env["saas.access.link"]
        old = Link._issue(self.instance, "welcome", self.instance.admin_login)
        new = Link._issue(self.instance, "welcome", self.instance.admin_login)
        self.assertIn("not valid", self.choose(old, "Chosen-pass-1").text, "replaced")
        Link.sudo().search([("instance_id", "=", self.instance.id), ("used_at", "=", False)]) \
            .expires_at = self.env.cr.now() - timedelta(minutes=1)
        self.assertIn("not valid", self.choose(new, "Chosen-pass-1").text, "expired")
        for forged in ("x" * 43, "", "../" * 15, "a" * 44, new + "\n"):
            self.assertIn("not valid", self.choose(forged, "Chosen-pass-1").text)

    def test_the_page_is_rate_limited_per_address(self):
        codes = [self.url_open("/saas/welcome").status_code for _ in range(RATE_LIMIT + 1)]
        self.assertEqual(codes, [200] * RATE_LIMIT + [429])

    def test_only_managers_send_links(self):
        user = new_test_user(self.env, "welcome_user", "saas_manager.group_saas_user")
        with self.assertRaises(AccessError):
            self.instance.with_user(user).action_send_welcome()
        with self.assertRaises(AccessError):
            self.env["saas.access.link"].with_user(user).search([])
