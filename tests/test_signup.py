import json
import re
import uuid
from contextlib import contextmanager
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import urlsplit

import psycopg2
import requests

from odoo import fields
from odoo.addons.base.models.ir_mail_server import IrMailServer
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import TEST_CURSOR_COOKIE_NAME, ChromeBrowser
from odoo.tools import config, mute_logger

from ..controllers import signup as signup_controller
from ..engine import pg
from .common import ServedClonesCase


def landed_as(login, database):
    """Browser code: "test successful" when the page's session is ``login`` on ``database``."""
    return """(async () => {
        const response = await fetch("/web/session/get_session_info", {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({jsonrpc: "2.0", params: {}})});
        const info = (await response.json()).result;
        if (info.username === %s && info.db === %s) {
            console.log("test successful");
        } else {
            console.error("landed as " + JSON.stringify([info.username, info.db]));
        }
    })()""" % (json.dumps(login), json.dumps(database))


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
VERIFY_RE = re.compile(r"/saas/signup/verify#([A-Za-z0-9_-]{43})")
LOGIN_RE = re.compile(r"/saas/login#([A-Za-z0-9_-]{43})\Z")


class SignupCase(ServedClonesCase):
    """The manager reached as ``<test database>.localhost`` and each client by its host,
    every one with its own cookies, as browsers keep them: ``^(%h|%d)$`` routes the
    first label of the manager's host to the test database and a client's full host to
    its database, and never both to one host."""

    template_modules = "base,mail"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.manager_host = "%s.localhost" % cls.env.cr.dbname
        cls.base = "http://127.0.0.1:%s" % config["http_port"]
        cls.plan = cls.env.ref("saas_manager.plan_starter")
        # Standbys serve the plans of their template's currency (see saas_instance_pool).
        cls.env["saas.plan"].search([]).currency_id = cls.env.ref("base.USD")
        cls.sent = []

    @classmethod
    def prepare_template(cls):
        conn = psycopg2.connect(dbname=cls.tpl_db, **cls.env["saas.instance"]._saas_pg_params())
        with conn, conn.cursor() as cr:
            cr.execute("SELECT value FROM ir_config_parameter "
                       "WHERE key = 'auth_signup.invitation_scope'")
            cls.template_signup_scope = cr.fetchone()
        conn.close()

    def setUp(self):
        super().setUp()
        self.patch(config, "options", {**config.options, "dbfilter": "^(%h|%d)$"})
        self.env["ir.config_parameter"].set_param(
            "web.base.url", "http://%s:%s" % (self.manager_host, config["http_port"]))
        self.browser_session = requests.Session()
        self.env.cr.execute("DELETE FROM saas_rate_limit")  # counters of earlier tests
        self.sent.clear()
        self.startPatcher(patch.object(IrMailServer, "build_email", autospec=True,
                                       side_effect=self._record_mail))

    def _record_mail(self, server, email_from, email_to, subject, body, **kwargs):
        self.sent.append({"to": email_to, "subject": subject, "body": body})
        return build_email(server, email_from, email_to, subject, body, **kwargs)

    def let_browser_reach(self, hosts):
        """Odoo's test browser answers 404 to every host but 127.0.0.1 and gives only that
        host the test's request cookie: ``hosts`` (loopback too) get both, and the
        manager's host the session a tour logs in with."""
        pause, set_cookie = ChromeBrowser._handle_request_paused, ChromeBrowser.set_cookie

        def handle_request_paused(browser, **params):
            if urlsplit(params["request"]["url"]).hostname in hosts:
                browser._websocket_send("Fetch.continueRequest",
                                        params={"requestId": params["requestId"]})
            else:
                pause(browser, **params)

        def set_cookie_too(browser, name, value, path, domain):
            set_cookie(browser, name, value, path, domain)
            if name == TEST_CURSOR_COOKIE_NAME:
                for host in hosts:
                    set_cookie(browser, name, value, path, host)
            elif name == "session_id":  # a tour's login: the manager is the test database
                set_cookie(browser, name, value, path, self.manager_host)

        self.patch(ChromeBrowser, "_handle_request_paused", handle_request_paused)
        self.patch(ChromeBrowser, "set_cookie", set_cookie_too)

    # -- the visitor's requests --------------------------------------------------------
    def manager(self, path, data=None, session=None, **kwargs):
        """A request to the manager in this visitor's browser (POSTs get a CSRF token)."""
        session = session or self.browser_session
        headers = {"Host": self.manager_host}
        self.env.flush_all()  # the server reads the database, not this test's cache
        if data is None:
            return session.get(self.base + path, headers=headers, timeout=60, **kwargs)
        if "csrf_token" not in data:
            page = session.get(self.base + "/saas/signup", headers=headers, timeout=60)
            data = {**data, "csrf_token": CSRF_RE.search(page.text).group(1)}
        return session.post(self.base + path, data=data, headers=headers, timeout=120,
                            allow_redirects=False, **kwargs)

    def form(self, **values):
        return {"company_name": "Globex", "email": "hank@globex.test",
                "subdomain": "g%s" % uuid.uuid4().hex[:8],
                "template": self.template.id, "plan": self.plan.id, "period": "monthly",
                "terms": "on", **values}

    def sign_up(self, **values):
        """Post the form; the token of the link mailed (None when no mail went out)."""
        self.sent.clear()
        response = self.manager("/saas/signup", self.form(**values))
        self.assertEqual(response.status_code, 200, response.text[-2000:])
        links = [VERIFY_RE.search(mail["body"]) for mail in self.sent]
        return next((link.group(1) for link in links if link), None)

    def verify(self, token):
        return self.manager("/saas/signup/verify", {"token": token})

    def client(self, host, path, data=None, session=None):
        """A request to a client database by its host, with that host's own cookies."""
        session = session if session is not None else requests.Session()
        self.env.flush_all()
        if data is None:
            return session.get(self.base + path, headers={"Host": host}, timeout=60,
                               allow_redirects=False)
        if "csrf_token" not in data:
            page = session.get(self.base + path, headers={"Host": host}, timeout=60)
            data = {**data, "csrf_token": CSRF_RE.search(page.text).group(1)}
        return session.post(self.base + path, data=data, headers={"Host": host}, timeout=60,
                            allow_redirects=False)

    def use_link(self, url, session=None):
        """Follow a one-click login link as a browser does; (response, session)."""
        match = LOGIN_RE.search(url)
        self.assertTrue(match, url)
        host = url.split("/")[2].split(":")[0]
        session = session if session is not None else requests.Session()
        return self.client(host, "/saas/login", {"token": match.group(1)}, session), session

    def session_info(self, host, session):
        response = session.post(self.base + "/web/session/get_session_info",
                                json={"jsonrpc": "2.0", "params": {}},
                                headers={"Host": host}, timeout=60)
        return response.json()["result"]

    def fill_pool(self, size=1):
        self.template.pool_size = size
        self.run_operations()
        self.addCleanup(self.drop_standbys)

    def drop_standbys(self):
        prefix = "saas_pool_%d_" % self.template._saas_deployment(self.template.server_id).id
        self.drop_databases([name for name in self.databases() if name.startswith(prefix)])

    def signed_up_instance(self, signup):
        self.addCleanup(self.drop_databases, [signup.instance_id.database_name])
        return signup.instance_id

    @contextmanager
    def limit(self, kind, count):
        with patch.dict(signup_controller.LIMITS, {kind: (count, 600)}):
            yield


build_email = IrMailServer.build_email


@tagged("post_install", "-at_install")
class TestSignupPages(SignupCase):
    """The public pages, and what each refuses."""

    def test_pricing_shows_the_plans_with_their_period(self):
        page = self.manager("/saas/pricing")
        self.assertEqual(page.status_code, 200)
        plans = self.env["saas.plan"].search([])
        for plan in plans:
            self.assertIn(plan.name, page.text)
        self.assertIn("Most popular", page.text)
        self.assertIn("/saas/signup?plan=%s&amp;period=monthly" % plans[0].code, page.text)
        yearly = self.manager("/saas/pricing?period=yearly")
        self.assertIn("/ year", yearly.text)
        self.assertIn("period=yearly", yearly.text)

    def test_a_signup_mails_a_link_and_provisions_nothing(self):
        instances = self.env["saas.instance"].search_count([])
        token = self.sign_up()
        self.assertTrue(token)
        signup = self.env["saas.signup"].search([("email", "=", "hank@globex.test")])
        self.assertEqual(signup.state, "pending")
        self.assertNotEqual(signup.token_hash, token)
        self.assertEqual(self.env["saas.instance"].search_count([]), instances)
        self.assertEqual(self.sent[0]["to"], ["hank@globex.test"])
        self.assertFalse(self.env["mail.mail"].sudo().search(
            [("body_html", "like", token)]), "a live link waits in the mail queue")

    def test_a_filled_honeypot_looks_accepted_and_does_nothing(self):
        self.assertIsNone(self.sign_up(website_url="http://spam.test"))
        self.assertFalse(self.env["saas.signup"].search([]))

    @mute_logger("odoo.http")
    def test_a_post_without_csrf_token_is_refused(self):
        response = self.manager("/saas/signup", {**self.form(), "csrf_token": "forged"})
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self.env["saas.signup"].search([]))

    def test_signups_are_rate_limited_per_address_and_per_email(self):
        self.env["ir.config_parameter"].set_param("saas.signup_ip_limit", "3")
        self.env["ir.config_parameter"].set_param("saas.signup_email_limit", "1")
        self.assertTrue(self.sign_up(email="a@globex.test"))
        refused = self.manager("/saas/signup", self.form(email="A@globex.test"))
        self.assertEqual(refused.status_code, 429, "a second form for the same e-mail")
        self.assertTrue(self.sign_up(email="b@globex.test"))
        refused = self.manager("/saas/signup", self.form(email="c@globex.test"))
        self.assertEqual(refused.status_code, 429, "a fourth form from the same address")
        self.assertIn("Too many attempts", refused.text)
        self.assertEqual(self.env["saas.signup"].search_count([]), 2)

    def test_unverified_signups_per_email_are_capped(self):
        self.env["ir.config_parameter"].set_param("saas.signup_unverified_max", "1")
        self.assertTrue(self.sign_up())
        refused = self.manager("/saas/signup", self.form())
        self.assertEqual(refused.status_code, 400)
        self.assertIn("waiting for verification", refused.text)

    def test_a_taken_reserved_or_malformed_subdomain_is_refused(self):
        self.new_instance(subdomain="taken")
        self.env["ir.config_parameter"].set_param("saas.reserved_subdomains", "billing")
        self.env["ir.config_parameter"].set_param("saas.signup_email_limit", "100")
        for subdomain in ("taken", "billing", "www", "-bad", "a" * 64, self.tpl_db):
            response = self.manager("/saas/signup", self.form(subdomain=subdomain))
            self.assertEqual(response.status_code, 400, subdomain)
            self.assertIn("cannot be used", response.text)
        self.assertFalse(self.env["saas.signup"].search([]))

    def test_availability_says_only_yes_or_no_and_is_rate_limited(self):
        self.new_instance(subdomain="taken")
        answers = {name: self.manager("/saas/signup/available?subdomain=%s" % name).json()
                   for name in ("free-one", "taken", "www", "-bad")}
        self.assertEqual(answers, {"free-one": {"available": True},
                                   "taken": {"available": False},
                                   "www": {"available": False},
                                   "-bad": {"available": False}})
        with self.limit("available", 1):
            self.assertEqual(self.manager("/saas/signup/available?subdomain=x").status_code,
                             429)

    def test_the_pages_exist_on_the_manager_only(self):
        instance = self.new_instance()
        self.assertTrue(instance._provision())
        for path in ("/saas/pricing", "/saas/signup", "/saas/signup/available?subdomain=x"):
            self.assertEqual(self.client(instance.host, path).status_code, 404, path)

    def test_sign_up_can_be_turned_off(self):
        self.env["ir.config_parameter"].set_param("saas.signup_enabled", "False")
        self.assertEqual(self.manager("/saas/pricing").status_code, 404)


@tagged("post_install", "-at_install")
class TestSignupVerification(SignupCase):
    """From the mailed link to the customer logged into their new Odoo."""

    def test_a_verified_link_claims_a_standby_and_opens_the_instance_logged_in(self):
        self.fill_pool()
        token = self.sign_up(company_name="Globex Corp", email="Hank@Globex.test")
        response = self.verify(token)
        self.assertEqual(response.status_code, 303, response.text[-1500:])
        signup = self.env["saas.signup"].search([])
        instance = self.signed_up_instance(signup)
        self.assertEqual(signup.state, "verified")
        self.assertEqual(instance.state, "active")
        self.assertEqual(self.last_operation(instance, "provision").step_ids.mapped("name"),
                         ["claim", "proxy"])
        self.assertTrue(response.headers["Location"].startswith(instance.url + "/saas/login#"))
        landed, session = self.use_link(response.headers["Location"])
        self.assertEqual((landed.status_code, landed.headers["Location"].split("/", 3)[-1]),
                         (303, "odoo"))
        info = self.session_info(instance.host, session)
        self.assertEqual((info["username"], info["db"]),
                         ("hank@globex.test", instance.database_name))
        subscription = instance.subscription_id
        self.assertEqual(subscription.state, "trial")
        self.assertEqual(subscription.trial_end, fields.Date.add(
            fields.Date.context_today(subscription), days=self.plan.trial_days))
        self.assertTrue(signup.user_id.has_group("base.group_portal"))
        self.assertEqual(instance.partner_id, signup.user_id.partner_id)
        portal = self.manager("/my/instances")
        self.assertEqual(portal.status_code, 200)
        self.assertIn(instance.host, portal.text)
        self.assertEqual(self.last_operation(self.template, "pool_fill").state, "queued")

    def test_a_pool_miss_provisions_and_the_waiting_page_gets_the_link(self):
        token = self.sign_up()
        response = self.verify(token)
        self.assertEqual(response.status_code, 200)
        self.assertIn("being made", response.text)
        instance = self.signed_up_instance(self.env["saas.signup"].search([]))
        self.assertEqual(self.manager("/saas/signup/status").json(),
                         {"state": "provisioning"})
        self.run_operations()
        self.assertEqual(instance.state, "active", self.op_error(instance))
        status = self.manager("/saas/signup/status").json()
        self.assertEqual(status["state"], "active")
        landed, _session = self.use_link(status["url"])
        self.assertEqual(landed.status_code, 303)
        self.assertEqual(self.manager("/saas/signup/status").status_code, 404,
                         "one login link per verified signup")
        self.assertEqual(self.manager("/saas/signup/status",
                                      session=requests.Session()).status_code, 404)

    def test_expired_and_used_links_are_refused(self):
        self.fill_pool()
        token = self.sign_up()
        self.env["saas.signup"].search([]).expires_at = self.env.cr.now() - timedelta(
            minutes=1)
        refused = self.verify(token)
        self.assertEqual(refused.status_code, 410)
        self.assertIn("not valid", refused.text)
        token = self.sign_up(subdomain="fresh-one")
        self.assertEqual(self.verify(token).status_code, 303)
        self.signed_up_instance(self.env["saas.signup"].search([("state", "=", "verified")]))
        self.assertEqual(self.verify(token).status_code, 410)
        self.assertEqual(self.verify("x" * 43).status_code, 410)

    def test_a_subdomain_taken_before_the_click_is_refused_then(self):
        token = self.sign_up(subdomain="race")
        self.new_instance(subdomain="race")
        refused = self.verify(token)
        self.assertEqual(refused.status_code, 410)
        self.assertIn("was taken", refused.text)
        self.assertEqual(self.env["saas.signup"].search([]).state, "failed")

    def test_one_trial_per_customer(self):
        self.fill_pool()
        self.assertEqual(self.verify(self.sign_up(subdomain="first")).status_code, 303)
        self.run_operations()  # refill
        self.assertEqual(self.verify(self.sign_up(subdomain="second")).status_code, 303)
        signups = self.env["saas.signup"].search([], order="id")
        for signup in signups:
            self.signed_up_instance(signup)
        self.assertEqual(signups[0].partner_id, signups[1].partner_id)
        self.assertEqual([signup.instance_id.subscription_id.state for signup in signups],
                         ["trial", "active"])


@tagged("post_install", "-at_install")
class TestLoginLinks(SignupCase):
    """One-click login for operators, and what a link refuses."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.first, cls.second = cls.provisioned(), cls.provisioned()
        cls.manager_user = new_test_user(cls.env, "saas_mgr_login",
                                         "saas_manager.group_saas_manager")

    @classmethod
    def provisioned(cls):
        instance = cls.env["saas.instance"].create({
            "name": "Login", "partner_id": cls.customer.id,
            "subdomain": "l%s" % uuid.uuid4().hex[:8],
            "template_id": cls.template.id, "plan_id": cls.plan.id})
        cls.addClassCleanup(cls.drop_databases, [instance.database_name])
        assert instance._provision(), instance.operation_error
        return instance

    def test_login_as_administrator_opens_the_customer_admin_once_and_is_logged(self):
        action = self.first.with_user(self.manager_user).action_login_as_admin()
        self.assertEqual(action["target"], "new")
        self.assertIn("logged in as the administrator %s" % self.first.admin_login,
                      self.first.message_ids[0].body)
        landed, session = self.use_link(action["url"])
        self.assertEqual(landed.status_code, 303)
        info = self.session_info(self.first.host, session)
        self.assertEqual(info["username"], self.first.admin_login)
        again, _session = self.use_link(action["url"])
        self.assertEqual(again.status_code, 403)

    def test_open_template_logs_the_saas_admin_into_the_template_once(self):
        """The template workflow's "open" step: a template being configured has a
        host-shaped database, which the server reaches, and its administrator is logged in."""
        code = "open-%s" % uuid.uuid4().hex[:8]
        template = self.env["saas.template"].create({
            "name": "Open", "code": code, "state": "configuring", "pool_size": 0,
            "admin_login": "admin", "admin_password": "admin"})
        self.assertEqual(template.database_name, "tpl-%s.saas.test" % code)
        with pg.maintenance(self.pg_params) as conn:
            pg.clone(conn, self.tpl_db, template.database_name,
                     owner_role=template._saas_db_owner())
        self.addCleanup(self.drop_databases, [template.database_name])
        admin = new_test_user(self.env, "saas_adm_open", "saas_manager.group_saas_admin")
        action = template.with_user(admin).action_open_database()
        self.assertIn("opened the template as its administrator admin",
                      template.message_ids[0].body)
        landed, session = self.use_link(action["url"])
        self.assertEqual((landed.status_code, landed.headers["Location"].split("/", 3)[-1]),
                         (303, "odoo"))
        info = self.session_info(template.database_name, session)
        self.assertEqual((info["db"], info["username"]), (template.database_name, "admin"))
        self.assertEqual(self.use_link(action["url"])[0].status_code, 403, "single use")
        with self.assertRaises(AccessError):
            template.with_user(self.manager_user).action_open_database()

    def test_an_expired_link_is_refused(self):
        url = self.first._saas_login_url()
        conn = psycopg2.connect(dbname=self.first.database_name, **self.pg_params)
        with conn, conn.cursor() as cr:
            cr.execute("UPDATE saas_login_token SET expires_at = expires_at - interval '1 hour'")
        conn.close()
        self.assertEqual(self.use_link(url)[0].status_code, 403)

    def test_a_link_for_another_database_is_refused(self):
        url = self.first._saas_login_url()
        other = url.replace(self.first.host, self.second.host)
        self.assertEqual(self.use_link(other)[0].status_code, 403)
        self.assertEqual(self.use_link(url)[0].status_code, 303, "the right one still works")

    def test_only_managers_may_log_in_as_the_administrator(self):
        user = new_test_user(self.env, "saas_user_login", "saas_manager.group_saas_user")
        for who in (user, self.customer_portal_user()):
            with self.assertRaises(AccessError):
                self.first.with_user(who).action_login_as_admin()

    def customer_portal_user(self):
        return new_test_user(self.env, "portal_login", "base.group_portal",
                             partner_id=self.customer.id)

    def test_clones_offer_no_public_signup(self):
        self.assertEqual(self.template_signup_scope, ("b2c",),
                         "the template itself has free sign-up")
        self.assertEqual(self.client(self.first.host, "/web/signup").status_code, 404)
        login_page = self.client(self.first.host, "/web/login")
        self.assertEqual(login_page.status_code, 200)
        self.assertNotIn("Don't have an account?", login_page.text)
        self.assertNotIn("/web/signup", login_page.text)


@tagged("post_install", "-at_install")
class TestSignupTour(SignupCase):
    """The whole way in a real browser: pricing, sign-up, the mailed link, logged into
    the new Odoo, then the instance in the manager's portal.  Hosts are under
    ``localhost``, which Chromium resolves to this machine by itself."""

    def setUp(self):
        super().setUp()
        self.let_browser_reach((self.manager_host, "signup-tour.localhost"))

    def test_signup_tour(self):
        port = config["http_port"]
        self.env["ir.config_parameter"].set_param("saas.base_domain", "localhost")
        self.patch(config, "options", {**config.options, "saas_public_scheme": "http",
                                       "saas_public_port": str(port)})
        self.fill_pool()
        self.addCleanup(self.drop_databases, ["signup-tour.localhost"])
        manager = "http://%s:%s" % (self.manager_host, port)
        self.start_tour(manager + "/saas/pricing", "saas_signup_tour")
        signup = self.env["saas.signup"].search([("email", "=", "tour@example.com")])
        self.assertEqual((signup.period, signup.plan_id.popular), ("yearly", True))
        link = next(VERIFY_RE.search(mail["body"]) for mail in self.sent)
        self.browser_js(
            "%s/saas/signup/verify#%s" % (manager, link.group(1)),
            code=landed_as("tour@example.com", "signup-tour.localhost"),
            ready="location.host === 'signup-tour.localhost:%s' && "
                  "location.pathname.startsWith('/odoo') && "
                  "!!document.querySelector('.o_main_navbar')" % port)
        instance = signup.instance_id
        self.assertEqual(instance.state, "active")
        signup.user_id.password = signup.user_id.login  # start_tour signs in with it
        self.patch(config, "options", {**config.options, "dbfilter": self.suite_dbfilter})
        self.start_tour("/my/instances", "saas_portal_instances_tour", login=signup.user_id.login)
