"""The customer portal: two customers, every route, stale actions, and the suspension page."""

import re

from odoo import http
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import config

from ..engine import suspension
from .common import LiveInstanceCase, OperationChecks, ServerKeyCase
from .test_signup import SignupCase, landed_as


class PortalCase(OperationChecks, ServerKeyCase, HttpCase):
    """Customers Acme and Globex, each with a portal user, an instance (a record: no
    database) and a paid subscription on the Starter plan."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_param = cls.env["ir.config_parameter"].sudo().set_param
        set_param("saas.base_domain", "example.com")
        set_param("saas.routing_mode", "host")
        cls.starter = cls.env.ref("saas_manager.plan_starter")
        cls.professional = cls.env.ref("saas_manager.plan_professional")
        cls.acme = cls.make_customer("Acme", "acme")
        cls.globex = cls.make_customer("Globex", "globex")

    @classmethod
    def make_customer(cls, name, subdomain):
        partner = cls.env["res.partner"].create(
            {"name": name, "email": "owner@%s.test" % subdomain, "is_company": True})
        user = new_test_user(cls.env, "%s_portal" % subdomain, groups="base.group_portal",
                             partner_id=partner.id, password="%s-portal-pw" % subdomain)
        instance = cls.env["saas.instance"].create({
            "name": name, "partner_id": partner.id, "subdomain": subdomain,
            "template_id": cls.env.ref("saas_manager.template_blank").id,
            "plan_id": cls.starter.id})
        instance.sudo().write({"state": "active", "user_count": 2, "storage_mb": 1024.0})
        sub = cls.env["saas.subscription"].create(
            {"instance_id": instance.id, "skip_trial": True})
        sub.action_activate()
        return {"partner": partner, "user": user, "instance": instance, "subscription": sub}

    def login(self, customer):
        self.authenticate(customer["user"].login, customer["user"].login.replace(
            "_portal", "-portal-pw"))

    def post(self, url, **data):
        return self.url_open(url, data={"csrf_token": http.Request.csrf_token(self), **data},
                             allow_redirects=False)

    def redirect_of(self, response):
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        return response.headers["Location"]


@tagged("post_install", "-at_install")
class TestPortalPages(PortalCase):

    def test_home_counters(self):
        self.login(self.acme)
        counters = self.make_jsonrpc_request(
            "/my/counters", {"counters": ["instance_count", "subscription_count"]})
        self.assertEqual(counters, {"instance_count": 1, "subscription_count": 1})
        self.assertIn("Your Odoo Instances", self.url_open("/my").text)

    def test_instance_page_shows_usage_plan_and_backup_button(self):
        self.login(self.acme)
        page = self.url_open("/my/instances/%d" % self.acme["instance"].id)
        self.assertEqual(page.status_code, 200)
        self.assertIn("Starter", page.text)
        self.assertIn('o_saas_usage_figures">2 / 5<', page.text)
        self.assertIn('o_saas_usage_figures">1024 MB / 10 GB<', page.text)
        self.assertIn("width: 40%", page.text)
        self.assertIn("width: 10%", page.text)  # 1024 MB of the 10 GB
        self.assertIn("o_saas_backup_now", page.text)
        self.assertIn("/my/instances/%d/open" % self.acme["instance"].id, page.text)
        self.assertNotIn("Globex", page.text)

    def test_subscription_page_shows_period_renewal_and_plans(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        page = self.url_open("/my/subscriptions/%d" % sub.id).text
        self.assertIn(sub.name, page)
        self.assertIn("Next renewal", page)
        self.assertIn("Professional", page)  # a plan to move to
        self.assertIn(sub.invoice_ids[0].name, page)

    def test_no_data_of_another_customer_by_id(self):
        self.login(self.acme)
        other = self.globex
        listing = self.url_open("/my/instances").text + self.url_open("/my/subscriptions").text
        self.assertIn("Acme", listing)
        self.assertNotIn("Globex", listing)
        self.assertNotIn(other["subscription"].name, listing)
        for url in ("/my/instances/%d" % other["instance"].id,
                    "/my/subscriptions/%d" % other["subscription"].id,
                    "/my/subscriptions/%d/change?plan_id=%d" % (other["subscription"].id,
                                                              self.professional.id),
                    "/my/instances/999999"):
            response = self.url_open(url, allow_redirects=False)
            self.assertEqual(self.redirect_of(response).rsplit("/", 1)[-1], "my", url)
        backup_url = "/my/instances/%d/backups/1/download" % other["instance"].id
        self.assertEqual(self.url_open(backup_url).status_code, 404)
        sub, instance = other["subscription"], other["instance"]
        for url, data in (("/my/instances/%d/backup" % instance.id, {}),
                          ("/my/instances/%d/domain" % instance.id, {"domain": "x.acme.test"}),
                          ("/my/instances/%d/open" % instance.id, {}),
                          ("/my/instances/%d/domain/check" % instance.id, {}),
                          ("/my/subscriptions/%d/cancel" % sub.id, {}),
                          ("/my/subscriptions/%d/keep" % sub.id, {}),
                          ("/my/subscriptions/%d/renew" % sub.id, {}),
                          ("/my/subscriptions/%d/change" % sub.id,
                           {"plan_id": self.professional.id, "period": "monthly",
                            "amount": "0"})):
            self.assertTrue(self.redirect_of(self.post(url, **data)).endswith("/my"), url)
        self.assertFalse(sub.cancel_at_period_end)
        self.assertEqual(sub.plan_id, self.starter)
        self.assertFalse(instance.custom_domain)
        self.assertFalse(self.env["saas.operation"].search([("instance_id", "=", instance.id)]))

    def test_actions_need_the_csrf_token(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        with self.assertLogs("odoo.http", "WARNING") as logs:
            response = self.url_open("/my/subscriptions/%d/cancel" % sub.id,
                                     data={"confirm": "1"}, allow_redirects=False)
        self.assertIn("No CSRF validation token", logs.output[0])
        self.assertEqual(response.status_code, 400)
        self.assertFalse(sub.cancel_at_period_end)

    def test_anonymous_visitors_are_sent_to_the_login(self):
        response = self.url_open("/my/instances/%d" % self.acme["instance"].id,
                                 allow_redirects=False)
        self.assertIn("/web/login", self.redirect_of(response))


@tagged("post_install", "-at_install")
class TestPortalActions(PortalCase):

    def test_cancel_then_keep_renewing(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        location = self.redirect_of(self.post("/my/subscriptions/%d/cancel" % sub.id))
        self.assertIn("saas_done=cancel", location)
        self.assertTrue(sub.cancel_at_period_end)
        self.assertIn("Ends on", self.url_open(location).text)
        self.post("/my/subscriptions/%d/keep" % sub.id)
        self.assertFalse(sub.cancel_at_period_end)
        self.assertTrue(sub.auto_renew)

    def test_a_stale_page_cannot_cancel_a_terminated_subscription(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        sub.sudo().state = "terminated"
        location = self.redirect_of(self.post("/my/subscriptions/%d/cancel" % sub.id))
        self.assertIn("saas_error=", location)
        self.assertIn("Only running subscriptions can be cancelled.", self.url_open(location).text)
        self.assertFalse(sub.cancel_at_period_end)

    def test_upgrade_preview_then_confirm_bills_the_prorata(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        preview = self.url_open("/my/subscriptions/%d/change?plan_id=%d&period=monthly" % (
            sub.id, self.professional.id)).text
        self.assertIn("It applies now. You are billed", preview)
        amount = re.search(r'name="amount" value="([^"]+)"', preview).group(1)
        self.assertGreater(float(amount), 0)
        location = self.redirect_of(self.post(
            "/my/subscriptions/%d/change" % sub.id, plan_id=self.professional.id,
            period="monthly", amount=amount))
        invoice = sub.invoice_ids.filtered(lambda m: m.saas_invoice_kind == "prorata")
        self.assertEqual(len(invoice), 1)
        self.assertAlmostEqual(invoice.amount_untaxed, float(amount))
        self.assertIn("/my/invoices/%d" % invoice.id, location)
        self.assertEqual(sub.plan_id, self.professional)
        self.assertEqual(self.acme["instance"].plan_id, self.professional)
        # The same (now stale) confirmation again changes nothing.
        location = self.redirect_of(self.post(
            "/my/subscriptions/%d/change" % sub.id, plan_id=self.professional.id,
            period="monthly", amount=amount))
        self.assertIn("saas_error=", location)
        self.assertEqual(len(sub.invoice_ids.filtered(
            lambda m: m.saas_invoice_kind == "prorata")), 1)

    def test_an_amount_not_shown_is_refused(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        location = self.redirect_of(self.post(
            "/my/subscriptions/%d/change" % sub.id, plan_id=self.professional.id,
            period="monthly", amount="0.01"))
        self.assertIn("The amount changed", self.url_open(location).text)
        self.assertEqual(sub.plan_id, self.starter)

    def test_downgrade_at_renewal_and_not_twice(self):
        self.login(self.globex)
        sub = self.globex["subscription"]
        sub.sudo().write({"plan_id": self.professional.id, "price": 79.0})
        preview = self.url_open("/my/subscriptions/%d/change?plan_id=%d&period=monthly" % (
            sub.id, self.starter.id)).text
        self.assertIn("It applies at the next renewal", preview)
        location = self.redirect_of(self.post(
            "/my/subscriptions/%d/change" % sub.id, plan_id=self.starter.id, period="monthly",
            amount="0.0"))
        self.assertIn("saas_done=scheduled", location)
        self.assertEqual((sub.plan_id, sub.next_plan_id), (self.professional, self.starter))
        location = self.redirect_of(self.post(
            "/my/subscriptions/%d/change" % sub.id, plan_id=self.starter.id, period="monthly",
            amount="0.0"))
        self.assertIn("already planned", self.url_open(location).text)

    def test_archived_or_other_company_plans_are_refused(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        other_company = self.env["res.company"].create({"name": "Other Seller"})
        foreign = self.professional.copy({"code": "foreign", "company_id": other_company.id})
        archived = self.professional.copy({"code": "archived", "active": False})
        page = self.url_open("/my/subscriptions/%d" % sub.id).text
        for plan in (foreign, archived):
            self.assertNotIn('value="%d"' % plan.id, page)
            location = self.redirect_of(self.post(
                "/my/subscriptions/%d/change" % sub.id, plan_id=plan.id, period="monthly",
                amount="0"))
            self.assertIn("not offered", self.url_open(location).text)
        self.assertEqual(sub.plan_id, self.starter)

    def test_renew_an_ended_subscription_goes_to_its_invoice(self):
        self.login(self.acme)
        sub = self.acme["subscription"]
        # A record without a database: renewing gives access back to an instance, which
        # is not what this test is about.
        self.acme["instance"].sudo().state = "draft"
        sub.sudo()._end("expired")
        location = self.redirect_of(self.post("/my/subscriptions/%d/renew" % sub.id))
        self.assertEqual(sub.state, "active")
        self.assertIn("/my/invoices/%d" % sub.last_invoice_id.id, location)

    def test_backups_asked_for_are_limited_per_day(self):
        self.login(self.acme)
        instance = self.acme["instance"]
        self.env["saas.settings"]._set("saas.portal_backups_per_day", 2)
        url = "/my/instances/%d/backup" % instance.id
        for _attempt in range(2):
            self.assertIn("saas_done=backup", self.redirect_of(self.post(url)))
            # Done by the backup runner (a queued one is not queued twice).
            self.last_operation(instance, "backup").sudo().state = "done"
        location = self.redirect_of(self.post(url))
        self.assertIn("already asked for 2 backups", self.url_open(location).text)
        ops = self.env["saas.operation"].search([("instance_id", "=", instance.id),
                                                 ("kind", "=", "backup")])
        self.assertEqual(len(ops), 2)

    def test_custom_domain_set_shown_checked_and_refused_when_bad(self):
        self.login(self.acme)
        instance = self.acme["instance"]
        url = "/my/instances/%d/domain" % instance.id
        location = self.redirect_of(self.post(url, domain="erp.acme.invalid"))
        self.assertIn("saas_done=domain", location)
        self.assertEqual(instance.custom_domain, "erp.acme.invalid")
        page = self.url_open("/my/instances/%d" % instance.id).text
        self.assertIn("erp.acme.invalid.  CNAME  acme.example.com.", page)
        self.assertEqual(self.last_operation(instance, "domain").params, {"old": ""})
        location = self.redirect_of(self.post(url + "/check"))
        self.assertIn("Not yet: erp.acme.invalid does not resolve", self.url_open(location).text)
        location = self.redirect_of(self.post(url, domain="shop.example.com"))
        self.assertIn("under the base domain", self.url_open(location).text)
        location = self.redirect_of(self.post(url, domain="evil.test; rm -rf /"))
        self.assertIn("saas_error=", location)
        self.assertEqual(instance.custom_domain, "erp.acme.invalid")
        self.post(url, domain="")
        self.assertFalse(instance.custom_domain)

    def test_mails_link_to_the_portal_page(self):
        sub = self.acme["subscription"]
        template = self.env.ref("saas_manager.mail_template_payment_overdue")
        body = template._render_field("body_html", sub.ids)[sub.id]
        self.assertIn("%s/my/subscriptions/%d" % (sub.get_base_url(), sub.id), body)


@tagged("post_install", "-at_install")
class TestSuspensionPage(LiveInstanceCase, HttpCase):
    """A suspended instance's host answers 503 with a page saying why, while its
    database refuses connections, and stops once access is back."""

    def setUp(self):
        super().setUp()
        # Hosts route to their own database only (the suite's dbfilter also matches
        # the test database, which would answer every host).
        self.patch(config, "options", {**config.options, "dbfilter": "^%h$"})

    def get(self, instance):
        return self.url_open("/odoo", headers={"Host": instance.host}, allow_redirects=False)

    def test_suspended_host_gets_the_page_then_its_odoo_again(self):
        instance = self.make_live_instance("pagetest")
        self.env.company.write({"email": "billing@saas.test"})
        instance._suspend("unpaid")
        self.assertEqual(instance.state, "suspended")
        self.assertFalse(self.connections_allowed(instance))
        response = self.get(instance)
        self.assertEqual(response.status_code, 503)
        self.assertIn("This service is suspended", response.text)
        self.assertIn("An invoice is overdue.", response.text)
        self.assertIn(self.env.company.name, response.text)
        self.assertIn("billing@saas.test", response.text)
        self.assertIn("/my/instances/%d" % instance.id, response.text)
        other = self.url_open("/odoo", headers={"Host": "nobody.saas.test"},
                              allow_redirects=False)
        self.assertNotEqual(other.status_code, 503)
        instance._reactivate()
        self.assertEqual(instance.state, "active")
        self.assertIsNone(suspension.read(config["data_dir"], instance.host))

    def test_a_limit_suspension_overtaken_by_non_payment_says_so(self):
        instance = self.make_live_instance("pagelimit")
        instance._suspend("user_limit")
        self.assertIn("user limit", self.get(instance).text)
        instance._suspend("unpaid")
        self.assertIn("An invoice is overdue.", self.get(instance).text)
        instance._reactivate()
        self.assertIsNone(suspension.read(config["data_dir"], instance.host))



@tagged("post_install", "-at_install")
class TestPortalTour(SignupCase):
    """In a real browser, as a portal customer: the instance and its usage bars, Open
    (logged into the real clone), an upgrade whose pro-rata invoice is paid with Odoo's
    demo provider, and the new limits."""

    def test_portal_tour(self):
        port = config["http_port"]
        self.env["ir.config_parameter"].set_param("saas.base_domain", "localhost")
        self.patch(config, "options", {**config.options, "saas_public_scheme": "http",
                                       "saas_public_port": str(port)})
        self.let_browser_reach((self.manager_host, "portal-tour.localhost"))
        customer = self.env["res.partner"].create(
            {"name": "Tour Customer", "email": "tour-owner@example.com", "is_company": True})
        user = new_test_user(self.env, "tour-owner@example.com", groups="base.group_portal",
                             partner_id=customer.id)
        instance = self.new_instance(subdomain="portal-tour", partner_id=customer.id)
        instance.action_provision()
        self.run_operations()
        self.assertEqual(instance.state, "active")
        sub = self.env["saas.subscription"].create(
            {"instance_id": instance.id, "skip_trial": True})
        sub.action_activate()
        instance.sudo().write({"user_count": 2, "storage_mb": 300.0})
        manager = "http://%s:%s" % (self.manager_host, port)
        self.open_logged_in(manager, instance, user)
        self.start_tour("%s/my/instances/%d" % (manager, instance.id),
                        "saas_portal_upgrade_tour", login=user.login, timeout=180)
        professional = self.env.ref("saas_manager.plan_professional")
        self.assertEqual((sub.plan_id, instance.plan_id), (professional, professional))
        prorata = sub.invoice_ids.filtered(lambda m: m.saas_invoice_kind == "prorata")
        self.assertIn(prorata.payment_state, ("paid", "in_payment"))

    def open_logged_in(self, manager, instance, user):
        """Open, clicked on the instance's portal page, lands logged into the clone as its
        administrator (the page's button is clicked once, by the wait for the clone)."""
        clone = "portal-tour.localhost:%s" % config["http_port"]
        self.browser_js(
            "%s/my/instances/%d" % (manager, instance.id),
            code=landed_as(instance.admin_login, "portal-tour.localhost"),
            ready="""(() => {
                if (location.host === "%s") {
                    return !!document.querySelector(".o_main_navbar");
                }
                const open = document.querySelector(".o_saas_open");
                if (open && !window.saasOpened) {
                    window.saasOpened = true;
                    open.click();
                }
                return false;
            })()""" % clone,
            login=user.login, timeout=120)
