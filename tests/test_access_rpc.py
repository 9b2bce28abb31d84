from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools import mute_logger

from .common import ServerKeyCase

ACCESS_ERROR = "odoo.exceptions.AccessError"
#: What a portal customer must not read of its own instance.
INTERNAL_INSTANCE_FIELDS = (
    "database_name", "owned_database", "operation_ids", "operation_error",
    "template_revision", "template_built_at",
    "health_checked_at", "health_response_ms", "health_failures", "health_error",
    "uptime_24h", "uptime_7d", "uptime_30d", "health_checks_24h", "health_checks_7d",
    "health_checks_30d", "response_p95_ms", "health_check_count", "database_mb",
    "filestore_mb", "user_id", "final_backup_id", "backup_count", "backup_ids",
    "subdomain_released", "server_id",
)
#: What it reads deliberately (the coming portal pages show them).
CUSTOMER_INSTANCE_FIELDS = (
    "name", "subdomain", "host", "url", "state", "plan_id", "template_id", "user_count",
    "user_limit", "storage_mb", "storage_limit_gb", "health_status", "admin_login",
    "custom_domain", "suspension_reason",
)


@tagged("post_install", "-at_install")
class TestAccessOverRpc(ServerKeyCase, HttpCase):
    """The access rules as a client sees them: real JSON-RPC through the test server."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_param = cls.env["ir.config_parameter"].sudo().set_param
        set_param("saas.base_domain", "example.com")
        set_param("saas.routing_mode", "host")
        cls.customer = cls.env["res.partner"].create(
            {"name": "Acme RPC", "email": "rpc@acme.test", "is_company": True})
        cls.instance = cls.env["saas.instance"].create({
            "name": "Rpc", "partner_id": cls.customer.id, "subdomain": "rpcaccess",
            "template_id": cls.env.ref("saas_manager.template_blank").id,
            "plan_id": cls.env.ref("saas_manager.plan_starter").id})
        cls.template = cls.env.ref("saas_manager.template_blank")
        cls.template.admin_password = "Template-secret-9"
        cls.users = {
            "portal": new_test_user(cls.env, "rpc_portal", "base.group_portal",
                                    partner_id=cls.env["res.partner"].create(
                                        {"name": "Portal Pat", "parent_id": cls.customer.id,
                                         "email": "pat@acme.test"}).id),
            "internal": new_test_user(cls.env, "rpc_internal", "base.group_user"),
            "saas_user": new_test_user(cls.env, "rpc_saas_user", "saas_manager.group_saas_user"),
            "saas_manager": new_test_user(cls.env, "rpc_saas_mgr",
                                          "saas_manager.group_saas_manager"),
            "saas_admin": new_test_user(cls.env, "rpc_saas_admin",
                                        "saas_manager.group_saas_admin"),
            "settings_admin": new_test_user(cls.env, "rpc_settings",
                                            "base.group_user,base.group_system"),
        }

    def call(self, who, model, method, args, kwargs=None):
        user = self.users[who]
        self.authenticate(user.login, user.login)
        return self.make_jsonrpc_request("/web/dataset/call_kw", {
            "model": model, "method": method, "args": args, "kwargs": kwargs or {}})

    def assertRefused(self, who, model, method, args, kwargs=None):
        with self.assertRaises(JsonRpcException) as caught, mute_logger("odoo.http"):
            self.call(who, model, method, args, kwargs)
        self.assertEqual(str(caught.exception), ACCESS_ERROR)

    def test_settings_are_for_settings_administrators_only(self):
        params = self.env["ir.config_parameter"].sudo()
        for who in ("portal", "internal", "saas_user", "saas_manager", "saas_admin"):
            with self.subTest(who=who):
                self.assertRefused(who, "res.config.settings", "set_values", [[]])
                self.assertRefused(who, "res.config.settings", "get_values", [])
                self.assertRefused(who, "res.config.settings", "default_get",
                                   [["saas_base_domain"]])
                self.assertEqual(params.get_param("saas.base_domain"), "example.com")
                self.assertEqual(params.get_param("saas.routing_mode"), "host")
        values = self.call("settings_admin", "res.config.settings", "default_get",
                           [["saas_base_domain", "saas_payment_grace_days"]])
        self.assertEqual(values["saas_base_domain"], "example.com")
        self.assertEqual(values["saas_payment_grace_days"], 7)

    def test_portal_reads_what_the_customer_should_see_only(self):
        ids = [self.instance.id]
        record = self.call("portal", "saas.instance", "read", [ids])[0]
        self.assertFalse(set(INTERNAL_INSTANCE_FIELDS) & set(record),
                         "internal fields are not even listed")
        self.assertEqual(record["subdomain"], "rpcaccess")
        shown = self.call("portal", "saas.instance", "read", [ids, list(CUSTOMER_INSTANCE_FIELDS)])
        self.assertEqual(shown[0]["host"], "rpcaccess.example.com")
        for name in INTERNAL_INSTANCE_FIELDS:
            with self.subTest(field=name):
                self.assertRefused("portal", "saas.instance", "read", [ids, [name]])
        self.assertRefused("portal", "saas.subscription", "search_read",
                           [[]], {"fields": ["notice_sent"]})
        internal = self.call("saas_user", "saas.instance", "read", [ids, ["database_name"]])
        self.assertEqual(internal[0]["database_name"], "rpcaccess.example.com")

    def test_no_path_renders_a_credential_for_those_who_may_not_see_it(self):
        """A mail template rendered by a SaaS Manager (composer, preview) computes no
        template password; only SaaS Administrators see it."""
        template_id = self.env["mail.template"].create({  # as a template editor could
            "name": "probe", "model_id": self.env.ref("saas_manager.model_saas_template").id,
            "body_html": '<p>pw=<t t-out="object.admin_password"/></p>'}).id
        for who, expected in (("saas_user", False), ("saas_manager", False),
                              ("saas_admin", True)):
            with self.subTest(who=who):
                preview = self.call(who, "mail.template.preview", "create", [{
                    "mail_template_id": template_id,
                    "resource_ref": "saas.template,%d" % self.template.id}])
                rendered = self.call(who, "mail.template.preview", "read",
                                     [[preview], ["body_html"]])[0]["body_html"]
                self.assertIn("pw=", rendered)
                self.assertEqual("Template-secret-9" in rendered, expected)
        self.assertRefused("saas_manager", "saas.template", "read",
                           [[self.template.id], ["admin_password"]])
        instance_fields = self.call("saas_admin", "saas.instance", "fields_get", [],
                                    {"attributes": ["type"]})
        self.assertFalse([name for name in instance_fields if "password" in name],
                         "an instance stores no password at all")
