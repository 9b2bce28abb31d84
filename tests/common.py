from contextlib import contextmanager

from odoo.tests import TransactionCase, new_test_user


class SaasCase(TransactionCase):
    """Base domain set, one customer, and a user per SaaS group."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("saas.base_domain", "example.com")
        cls.env["ir.config_parameter"].sudo().set_param("saas.routing_mode", "host")
        cls.Instance = cls.env["saas.instance"]
        cls.template = cls.env.ref("saas_manager.template_blank")
        cls.plan = cls.env.ref("saas_manager.plan_starter")
        cls.customer = cls.env["res.partner"].create(
            {"name": "Acme", "email": "owner@acme.test", "is_company": True})
        cls.saas_user = new_test_user(cls.env, "saas_user", "saas_manager.group_saas_user")
        cls.saas_manager = new_test_user(cls.env, "saas_mgr", "saas_manager.group_saas_manager")
        cls.saas_admin = new_test_user(cls.env, "saas_admin", "saas_manager.group_saas_admin")

    @classmethod
    def make_instance(cls, subdomain, partner=None, **values):
        return cls.env["saas.instance"].create({
            "name": subdomain.title(),
            "partner_id": (partner or cls.customer).id,
            "subdomain": subdomain,
            "template_id": cls.template.id,
            "plan_id": cls.plan.id,
            **values,
        })

    @contextmanager
    def assertRaisesText(self, exception, regex):
        """assertRaises (which rolls the failed operation back) plus a message check."""
        with self.assertRaises(exception) as caught:
            yield caught
        self.assertRegex(str(caught.exception), regex)
