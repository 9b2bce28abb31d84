from odoo.tests import tagged

from .common import SaasCase

INSTANCE_TEMPLATES = (  # the access mail (instance_ready) has its own test
    "mail_template_instance_suspended",
    "mail_template_instance_reactivated", "mail_template_instance_terminated",
    "mail_template_user_limit", "mail_template_storage_limit",
)
SUBSCRIPTION_TEMPLATES = (
    "mail_template_trial_ending", "mail_template_subscription_expiring",
    "mail_template_subscription_renewed", "mail_template_payment_overdue",
)


@tagged("post_install", "-at_install")
class TestMailTemplates(SaasCase):
    """Every notification renders for a real record, in the customer's language, and is
    sent to the customer through the chatter."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("fr_FR")
        cls.customer.lang = "fr_FR"
        cls.instance = cls.make_instance("mailco")
        cls.instance.sudo().write({"admin_login": "owner@acme.test", "user_count": 7,
                                   "storage_mb": 12345.0, "suspension_reason": "unpaid"})
        cls.subscription = cls.env["saas.subscription"].create(
            {"instance_id": cls.instance.id, "skip_trial": True})
        cls.subscription.action_activate()  # a posted, unpaid invoice

    def check_template(self, record, xmlid, expected):
        template = self.env.ref("saas_manager.%s" % xmlid)
        self.assertEqual(template.model, record._name)
        french = "[FR] " + template.subject
        template.with_context(lang="fr_FR").subject = french
        rendered = template._render_field("subject", record.ids, compute_lang=True)[record.id]
        self.assertTrue(rendered.startswith("[FR] "), "rendered in the customer's language")
        record._notify("saas_manager.%s" % xmlid)
        message = record.message_ids[0]
        self.assertEqual(message.subject, rendered)
        self.assertIn(self.customer, message.partner_ids, "sent to the customer")
        self.assertEqual(message.message_type, "comment")
        for text in expected:
            self.assertIn(text, str(message.body), "%s: %r missing" % (xmlid, text))

    def test_instance_templates(self):
        for xmlid in INSTANCE_TEMPLATES:
            with self.subTest(xmlid):
                self.check_template(self.instance, xmlid, [self.customer.name])

    def test_welcome_mail_renders_the_link_in_the_customer_language(self):
        template = self.env.ref("saas_manager.mail_template_instance_ready")
        template.with_context(lang="fr_FR").subject = "[FR] " + template.subject
        url = "https://manager.test/saas/welcome#" + "t" * 43
        rendered = template.with_context(saas_welcome_url=url)._generate_template(
            self.instance.ids, ("subject", "body_html"))[self.instance.id]
        self.assertTrue(rendered["subject"].startswith("[FR] "))
        self.assertIn(url, rendered["body_html"])
        self.assertIn("owner@acme.test", rendered["body_html"])
        plain = template._generate_template(self.instance.ids, ("body_html",))[self.instance.id]
        self.assertNotIn("/saas/welcome", plain["body_html"], "no link without one issued")

    def test_subscription_templates(self):
        for xmlid in SUBSCRIPTION_TEMPLATES:
            with self.subTest(xmlid):
                self.check_template(self.subscription, xmlid, [self.customer.name])
        invoice = self.subscription.last_invoice_id
        self.check_template(self.subscription, "mail_template_subscription_renewed",
                            [invoice.name])
        self.check_template(self.subscription, "mail_template_payment_overdue",
                            [invoice.name])
