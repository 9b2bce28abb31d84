from odoo.tests import Form, tagged

from .common import SaasCase


@tagged("post_install", "-at_install")
class TestForms(SaasCase):
    """Every form opens and saves through the real view, as the operator would."""

    def test_instance_form(self):
        form = Form(self.env["saas.instance"].with_user(self.saas_manager))
        form.name = "Form Co"
        form.partner_id = self.customer
        form.subdomain = "formco"
        form.template_id = self.template
        form.plan_id = self.plan
        self.assertEqual(form.database_name, "formco.example.com")
        instance = form.save()
        self.assertEqual(instance.state, "draft")
        self.assertEqual(instance.url, "https://formco.example.com")

    def test_subscription_form_follows_the_instance(self):
        instance = self.make_instance("subform")
        form = Form(self.env["saas.subscription"].with_user(self.saas_manager))
        form.instance_id = instance
        self.assertEqual(form.partner_id, self.customer)
        self.assertEqual(form.plan_id, self.plan)
        form.period = "yearly"
        self.assertEqual(form.price, self.plan.price_yearly)
        subscription = form.save()
        self.assertTrue(subscription.name.startswith("SUB/"))
        self.assertEqual(subscription.state, "draft")
        self.assertFalse(subscription.date_end, "a draft has no period yet")
        self.assertEqual(instance.subscription_count, 1)
        subscription.with_user(self.saas_manager).action_activate()
        self.assertEqual(subscription.state, "trial")
        self.assertEqual((subscription.trial_end - subscription.date_start).days, 14)
        self.assertEqual(instance.subscription_id, subscription)

    def test_plan_form(self):
        form = Form(self.env["saas.plan"].with_user(self.saas_admin))
        form.name = "Tiny"
        form.code = "tiny"
        form.max_users = 2
        form.storage_gb = 1
        form.price_monthly = 9
        form.price_yearly = 90
        plan = form.save()
        self.assertEqual(plan.price_for("yearly"), 90)
        self.assertFalse(plan.currency_mismatch, "priced in the company's currency by default")
        other = self.env.ref("base.EUR") if self.env.company.currency_id.name != "EUR" else (
            self.env.ref("base.USD"))
        plan.currency_id = other
        self.assertTrue(plan.currency_mismatch, "the form warns: invoices need rates")

    def test_template_form(self):
        form = Form(self.env["saas.template"].with_user(self.saas_admin))
        form.name = "Clinic"
        form.code = "clinic"
        form.database_name = "saas_tpl_clinic"
        form.module_names = "calendar, contacts"
        form.admin_password = "template-pass"
        template = form.save()
        self.assertEqual(template.module_list(), ["calendar", "contacts"])
        self.assertEqual(template.module_count, 2)

    def test_template_modules_are_picked_from_the_servers(self):
        Module = self.env["ir.module.module"]
        form = Form(self.env["saas.template"].with_user(self.saas_admin))
        form.name = "Shop"
        form.code = "shop"
        form.database_name = "saas_tpl_shop"
        form.module_names = "elsewhere_only"  # a module another server has
        form.module_ids.add(Module.search([("name", "=", "mail")]))
        form.module_ids.add(Module.search([("name", "=", "contacts")]))
        form.admin_password = "template-pass"
        template = form.save()
        self.assertEqual(template.module_list(), ["contacts", "mail", "elsewhere_only"])
        with Form(template.with_user(self.saas_admin)) as edit:
            edit.module_ids.remove(id=Module.search([("name", "=", "contacts")]).id)
        self.assertEqual(template.module_list(), ["mail", "elsewhere_only"])

    def test_settings_form(self):
        self.saas_admin.groups_id += self.env.ref("base.group_system")
        form = Form(self.env["res.config.settings"].with_user(self.saas_admin))
        form.saas_base_domain = "saas.example.org"
        form.saas_routing_mode = "subdomain"
        self.assertEqual(form.saas_required_dbfilter, "^%d$")
        form.save().execute()
        get = self.env["ir.config_parameter"].get_param
        self.assertEqual(get("saas.base_domain"), "saas.example.org")
        self.assertEqual(get("saas.routing_mode"), "subdomain")

    def test_settings_warn_on_dbfilter_mismatch(self):
        from odoo.tools import config
        settings = self.env["res.config.settings"].create({"saas_routing_mode": "host"})
        self.patch(config, "options", dict(config.options, dbfilter="^%d$"))
        settings.invalidate_recordset(["saas_dbfilter_mismatch"])
        self.assertTrue(settings.saas_dbfilter_mismatch)
        self.patch(config, "options", dict(config.options, dbfilter="^%h$"))
        settings.invalidate_recordset(["saas_dbfilter_mismatch"])
        self.assertFalse(settings.saas_dbfilter_mismatch)

    def test_partner_smart_buttons_count_the_commercial_entity(self):
        contact = self.env["res.partner"].create({"name": "Jo", "parent_id": self.customer.id})
        instance = self.make_instance("smart", partner=contact)
        self.env["saas.subscription"].create({"instance_id": instance.id})
        self.assertEqual(self.customer.saas_instance_count, 1)
        self.assertEqual(contact.saas_subscription_count, 1)
        action = self.customer.action_view_saas_instances()
        self.assertEqual(self.env["saas.instance"].search(action["domain"]), instance)

    def test_partner_form_with_saas_buttons(self):
        self.saas_manager.groups_id += self.env.ref("base.group_partner_manager")
        form = Form(self.customer.with_user(self.saas_manager))
        self.assertEqual(form.saas_instance_count, 0)
        form.phone = "+32 2 555 00 00"
        form.save()
        self.assertEqual(self.customer.phone, "+32 2 555 00 00")
