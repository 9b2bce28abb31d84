from odoo.exceptions import AccessError
from odoo.service.model import get_public_method
from odoo.tests import new_test_user, tagged

from .common import SaasCase

CRUD = ("read", "write", "create", "unlink")


@tagged("post_install", "-at_install")
class TestAccess(SaasCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instance = cls.make_instance("access")
        cls.subscription = cls.env["saas.subscription"].create({"instance_id": cls.instance.id})
        cls.internal = new_test_user(cls.env, "plain_internal", "base.group_user")

    def allowed(self, user, model):
        """Operations ``user`` may do on ``model``, as the ORM says (ACL and rules)."""
        records = {"saas.instance": self.instance, "saas.subscription": self.subscription,
                   "saas.template": self.template, "saas.plan": self.plan}[model]
        result = set()
        for operation in CRUD:
            try:
                records.with_user(user).check_access(operation)
            except AccessError:
                continue
            result.add(operation)
        return result

    def test_matrix(self):
        everything, read = set(CRUD), {"read"}
        expected = {
            self.internal: {"saas.instance": set(), "saas.subscription": set(),
                            "saas.template": set(), "saas.plan": set()},
            self.saas_user: {"saas.instance": read, "saas.subscription": read,
                             "saas.template": read, "saas.plan": read},
            self.saas_manager: {"saas.instance": everything, "saas.subscription": everything,
                                "saas.template": read, "saas.plan": read},
            self.saas_admin: {"saas.instance": everything, "saas.subscription": everything,
                              "saas.template": everything, "saas.plan": everything},
        }
        for user, rights in expected.items():
            for model, operations in rights.items():
                with self.subTest(user=user.login, model=model):
                    self.assertEqual(self.allowed(user, model), operations)

    def test_user_cannot_write_for_real(self):
        with self.assertRaises(AccessError):
            self.instance.with_user(self.saas_user).write({"name": "Hacked"})
        with self.assertRaises(AccessError):
            self.make_instance_as(self.saas_user, "sneaky")

    def make_instance_as(self, user, subdomain):
        return self.env["saas.instance"].with_user(user).create({
            "name": subdomain, "partner_id": self.customer.id, "subdomain": subdomain,
            "template_id": self.template.id, "plan_id": self.plan.id})

    def test_manager_creates_and_admin_edits_plans(self):
        created = self.make_instance_as(self.saas_manager, "bymanager")
        self.assertEqual(created.database_name, "bymanager.example.com")
        with self.assertRaises(AccessError):
            self.plan.with_user(self.saas_manager).write({"price_monthly": 1})
        self.plan.with_user(self.saas_admin).write({"price_monthly": 30})
        self.assertEqual(self.plan.price_monthly, 30)

    def test_template_password_is_admin_only(self):
        self.template.admin_password = "s3cret"
        self.assertEqual(self.template.with_user(self.saas_admin).admin_password, "s3cret")
        with self.assertRaises(AccessError):
            self.template.with_user(self.saas_manager).read(["admin_password"])
        with self.assertRaises(AccessError):
            self.template.with_user(self.saas_manager).read(["admin_password_encrypted"])

    def test_portal_sees_only_own_commercial_partner(self):
        other = self.env["res.partner"].create({"name": "Other Co", "is_company": True})
        other_instance = self.make_instance("other", partner=other)
        other_sub = self.env["saas.subscription"].create({"instance_id": other_instance.id})
        contact = self.env["res.partner"].create(
            {"name": "Acme Contact", "parent_id": self.customer.id, "email": "c@acme.test"})
        portal_a = new_test_user(self.env, "portal_a", "base.group_portal",
                                 partner_id=contact.id)
        Instance = self.env["saas.instance"].with_user(portal_a)
        self.assertEqual(Instance.search([]), self.instance)
        self.assertEqual(self.env["saas.subscription"].with_user(portal_a).search([]),
                         self.subscription)
        with self.assertRaises(AccessError):
            other_instance.with_user(portal_a).read(["name"])
        with self.assertRaises(AccessError):
            other_sub.with_user(portal_a).read(["name"])
        with self.assertRaises(AccessError):
            self.instance.with_user(portal_a).write({"name": "Mine now"})

    def test_multi_company_isolation(self):
        company_b = self.env["res.company"].create({"name": "SaaS B"})
        instance_b = self.make_instance("companyb", company_id=company_b.id)
        manager_a = new_test_user(self.env, "mgr_a", "saas_manager.group_saas_manager",
                                  company_id=self.env.company.id,
                                  company_ids=[self.env.company.id])
        visible = self.env["saas.instance"].with_user(manager_a).search([])
        self.assertIn(self.instance, visible)
        self.assertNotIn(instance_b, visible)
        with self.assertRaises(AccessError):
            instance_b.with_user(manager_a).read(["name"])

    def test_operational_helpers_are_private(self):
        """Methods starting with '_' cannot be called over RPC."""
        for model, name in (("saas.instance", "_saas_params"),
                            ("saas.instance", "_reserved_names"),
                            ("saas.template", "_encrypt"), ("saas.template", "_decrypt")):
            with self.subTest(method=name), self.assertRaises(AccessError):
                get_public_method(self.env[model], name)
