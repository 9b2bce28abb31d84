"""Public pages of the manager: pricing, sign-up, e-mail verification, trial status.

Every route answers only on the manager's database (a client database gets
a 404) and while ``saas.signup_enabled`` is on.  POSTs are CSRF-checked by
Odoo; every route is rate-limited per client address, the sign-up form also
per e-mail; a honeypot field, invisible to people, makes a bot's form look
accepted and do nothing.  When Odoo's captcha module is installed
(``google_recaptcha``, or ``website_cf_turnstile`` which plugs into the same
check), its verdict is asked before anything is recorded.  The availability
endpoint answers available or not, never why nor whose.
"""

from odoo import http
from odoo.exceptions import UserError, ValidationError
from odoo.http import request

#: (requests, window seconds) per client address, for each kind of request.
LIMITS = {"page": (120, 600), "available": (60, 600), "verify": (20, 600),
          "status": (600, 600)}
HONEYPOT = "website_url"
SESSION_KEY = "saas_signup_id"


class SaasSignup(http.Controller):

    # -- pages -----------------------------------------------------------------------
    @http.route("/saas/pricing", type="http", auth="public", methods=["GET"], sitemap=True,
                website=True)
    def pricing(self, period="monthly", **_kwargs):
        refused = self._refused("page")
        if refused:
            return refused
        return request.render("saas_manager.pricing_page", {
            "plans": request.env["saas.signup"]._saas_offered_plans(),
            "period": "yearly" if period == "yearly" else "monthly"})

    @http.route("/saas/signup", type="http", auth="public", methods=["GET", "POST"],
                sitemap=True, website=True)
    def signup(self, **post):
        refused = self._refused("page")
        if refused:
            return refused
        if request.httprequest.method != "POST":
            return self._form(post)
        if post.get(HONEYPOT):
            return request.render("saas_manager.signup_sent_page", {"email": post.get("email")})
        Signup = request.env["saas.signup"].sudo()
        settings = request.env["saas.settings"].sudo()
        email = (post.get("email") or "").strip().lower()
        if not (self._hit("signup-ip", settings._get("saas.signup_ip_limit"), 3600)
                and self._hit("signup-email:%s" % email,
                              settings._get("saas.signup_email_limit"), 86400, per_ip=False)):
            return self._too_many()
        try:
            self._check_captcha()
            if not post.get("terms"):
                raise UserError(request.env._("Accept the terms of service to go on."))
            signup = Signup._saas_request(post, request.httprequest.remote_addr)
        except (UserError, ValidationError) as exc:
            return self._form(post, error=str(exc), status=400)
        return request.render("saas_manager.signup_sent_page", {"email": signup.email})

    @http.route("/saas/signup/available", type="http", auth="public", methods=["GET"],
                sitemap=False)
    def available(self, subdomain="", **_kwargs):
        if not self._enabled():
            raise request.not_found()
        if not self._hit("available", *LIMITS["available"]):
            return request.make_json_response({"error": "too many requests"}, status=429)
        problem = request.env["saas.signup"].sudo()._saas_subdomain_problem(
            str(subdomain).strip().lower())
        return request.make_json_response({"available": problem is None})

    @http.route("/saas/signup/verify", type="http", auth="public", methods=["GET", "POST"],
                sitemap=False, website=True)
    def verify(self, token="", **_kwargs):
        refused = self._refused("verify")
        if refused:
            return refused
        if request.httprequest.method != "POST":
            return request.render("saas_manager.signup_verify_page", {})
        try:
            signup = request.env["saas.signup"].sudo()._saas_verify(token)
        except UserError as exc:
            return request.render("saas_manager.signup_verify_page", {"error": str(exc)},
                                  status=410)
        self._open_portal_session(signup.user_id)
        request.session[SESSION_KEY] = signup.id
        if signup.instance_id.state == "active":
            return request.redirect(signup.instance_id._saas_login_url(), code=303, local=False)
        return request.render("saas_manager.signup_preparing_page", {"signup": signup})

    @http.route("/saas/signup/status", type="http", auth="public", methods=["GET"],
                sitemap=False)
    def status(self, **_kwargs):
        """The state of this browser's last verified signup; once active, a login link."""
        if not self._enabled():
            raise request.not_found()
        if not self._hit("status", *LIMITS["status"]):
            return request.make_json_response({"error": "too many requests"}, status=429)
        signup = request.env["saas.signup"].sudo().browse(
            request.session.get(SESSION_KEY) or []).exists()
        instance = signup.instance_id
        if not instance:
            return request.make_json_response({"state": "unknown"}, status=404)
        if instance.state == "active":
            request.session.pop(SESSION_KEY, None)  # one login link per verified signup
            return request.make_json_response({"state": "active",
                                               "url": instance._saas_login_url()})
        return request.make_json_response({"state": instance.state})

    # -- helpers ----------------------------------------------------------------------
    def _form(self, values, error=None, status=200):
        Signup = request.env["saas.signup"].sudo()
        plans = Signup._saas_offered_plans()
        plan = plans.filtered(lambda p: p.code == values.get("plan")
                              or str(p.id) == str(values.get("plan")))[:1]
        settings = request.env["saas.settings"].sudo()
        return request.render("saas_manager.signup_page", {
            "plans": plans, "plan": plan or plans.filtered("popular")[:1] or plans[:1],
            "templates": Signup._saas_offered_templates(),
            "period": "yearly" if values.get("period") == "yearly" else "monthly",
            "base_domain": request.env["saas.instance"].sudo()._saas_params()["base_domain"],
            "terms_url": settings._get("saas.signup_terms_url"),
            "values": values, "error": error, "honeypot": HONEYPOT}, status=status)

    @staticmethod
    def _enabled():
        return "saas.signup" in request.env and request.env["saas.settings"].sudo()._get(
            "saas.signup_enabled")

    def _refused(self, kind):
        """A 404 off the manager or with sign-up off, a 429 over the limit, else None."""
        if not self._enabled():
            raise request.not_found()
        if not self._hit(kind, *LIMITS[kind]):
            return self._too_many()
        return None

    @staticmethod
    def _hit(key, limit, window, per_ip=True):
        if per_ip:
            key = "%s:%s" % (key, request.httprequest.remote_addr)
        return request.env["saas.rate.limit"].sudo()._hit(key, limit, window)

    @staticmethod
    def _too_many():
        return request.render("saas_manager.signup_refused_page", {}, status=429)

    @staticmethod
    def _check_captcha():
        """Odoo's captcha, when its module is installed: its widget serves every
        ``.oe_signup_form`` (ours is one) with the action "signup"; a bad answer raises."""
        ir_http = request.env["ir.http"]
        if hasattr(ir_http, "_verify_request_recaptcha_token") and not (
                ir_http._verify_request_recaptcha_token("signup")):
            raise UserError(request.env._("The captcha check failed: try again."))

    @staticmethod
    def _open_portal_session(user):
        """The verified visitor is signed into the manager's portal (``/my``), unless this
        browser already has a session of someone else."""
        if request.session.uid or not user:
            return
        request.session.pre_login, request.session.pre_uid = user.login, user.id
        request.session.finalize(request.env)
        request.env = request.env(user=user.id)
