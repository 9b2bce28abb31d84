from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.safe_eval import safe_eval

from .common import SaasCase, ServerKeyCase


@tagged("post_install", "-at_install")
class TestDashboardTiles(SaasCase):
    """Every tile counts what its action lists; the business tiles are the managers'."""

    def tiles(self, user=None):
        Dashboard = self.env["saas.dashboard"].with_user(user or self.saas_manager)
        return {tile["key"]: tile for tile in Dashboard.get_tiles()}

    def live(self, subdomain, **values):
        instance = self.make_instance(subdomain)
        instance.sudo().write({"state": "active", **values})
        return instance

    def test_each_tile_counts_what_its_action_lists(self):
        self.live("dash-up", health_status="up")
        down = self.live("dash-down", health_status="down")
        self.make_instance("dash-susp").sudo().state = "suspended"
        self.env["saas.incident"]._saas_open("down", down, "Dash-down is down")
        before = self.tiles()
        self.live("dash-more", health_status="down")
        after = self.tiles()
        self.assertEqual(after["down"]["count"], before["down"]["count"] + 1)
        self.assertEqual(after["active"]["count"], before["active"]["count"] + 1)
        self.assertGreaterEqual(after["incidents"]["count"], 1)
        for key, tile in after.items():
            action = tile["action"]
            if key == "mrr":
                self.assertEqual(action["res_model"], "saas.kpi.report")
                continue
            listed = self.env[action["res_model"]].with_user(self.saas_manager).search_count(
                action["domain"])
            self.assertEqual(listed, tile["count"], key)
            self.assertEqual(tile["value"], str(tile["count"]))

    def test_mrr_is_the_sum_of_the_last_logged_values(self):
        instance = self.make_instance("dash-mrr")
        sub = self.env["saas.subscription"].create({"instance_id": instance.id})
        base = self.tiles()["mrr"]["count"]
        Log = self.env["saas.subscription.log"].sudo()
        currency = self.env.company.currency_id
        Log.create([{"subscription_id": sub.id, "date": "2026-01-10", "state_to": "active",
                     "company_id": self.env.company.id, "currency_id": currency.id,
                     "mrr_change_company": change} for change in (29.0, 50.0, -20.0)])
        tile = self.tiles()["mrr"]
        self.assertAlmostEqual(tile["count"], base + 59.0)
        self.assertIn(currency.symbol, tile["value"])

    def test_overdue_backups(self):
        instance = self.live("dash-bk")
        self.plan.backup_interval_hours = 24
        self.assertNotIn(instance, self.env["saas.dashboard"]._backups_overdue())
        self.env.cr.execute("UPDATE saas_instance SET create_date = now() - interval '3 days' "
                            "WHERE id = %s", [instance.id])
        instance.invalidate_recordset(["create_date"])
        self.assertIn(instance, self.env["saas.dashboard"]._backups_overdue())

    def test_customers_are_the_partners_with_instances(self):
        self.make_instance("dash-cust")
        nobody = self.env["res.partner"].create({"name": "Not a customer"})
        action = self.env["ir.actions.act_window"]._for_xml_id("saas_manager.action_saas_customer")
        customers = self.env["res.partner"].with_user(self.saas_user).search(
            safe_eval(action["domain"]))
        self.assertIn(self.customer, customers)
        self.assertNotIn(nobody, customers)

    def test_who_sees_what(self):
        self.assertNotIn("mrr", self.tiles(self.saas_user))
        self.assertNotIn("overdue", self.tiles(self.saas_user))
        self.assertIn("mrr", self.tiles(self.saas_manager))
        outsider = new_test_user(self.env, "dash_outsider", "base.group_user")
        with self.assertRaises(AccessError):
            self.env["saas.dashboard"].with_user(outsider).get_tiles()


@tagged("post_install", "-at_install")
class TestDashboardTour(ServerKeyCase, HttpCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("saas.base_domain", "example.com")
        partner = cls.env["res.partner"].create({"name": "Dash Co", "email": "d@dash.test"})
        for subdomain, health in (("dashup", "up"), ("dashdown", "down")):
            cls.env["saas.instance"].create({
                "name": subdomain.title(), "partner_id": partner.id, "subdomain": subdomain,
                "template_id": cls.env.ref("saas_manager.template_blank").id,
                "plan_id": cls.env.ref("saas_manager.plan_starter").id,
            }).sudo().write({"state": "active", "health_status": health})

    def test_operator_lands_on_the_dashboard(self):
        self.start_tour("/odoo", "saas_dashboard_tour", login="admin")

    def test_home_action_for_saas_users_only(self):
        dashboard = self.env.ref("saas_manager.action_saas_dashboard").id
        new_test_user(self.env, "dash_op", "saas_manager.group_saas_user", password="dash_op1")
        new_test_user(self.env, "dash_emp", "base.group_user", password="dash_emp1")
        for login, expected in (("dash_op", dashboard), ("dash_emp", False)):
            self.authenticate(login, login + "1")
            info = self.make_jsonrpc_request("/web/session/get_session_info")
            self.assertEqual(info["home_action_id"], expected, login)
