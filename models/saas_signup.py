"""``saas.signup``: a visitor's request for a trial, until its e-mail is verified.

Nothing is provisioned before the verification link is used.  The link's
token is 256 bits, stored as a SHA-256 hash only, single use (the row is
locked and marked when it is spent), and expires after
``saas.signup_link_hours``.  The mail carrying it is sent at once and
deleted, sent or not, as the welcome mail is: no live link waits in the mail
queue.  The link carries the token in its fragment (no log holds it) and its
page posts it back: a mail scanner that fetches links does not spend it.

The verification then does in one go what an operator would: a customer
(partner, and a portal user on the manager for ``/my``), an instance,
a trial subscription (one trial per customer, as ever), and a provisioning
that takes a standby database when one is ready (see ``saas_instance_pool``).
"""

import secrets
from datetime import timedelta

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize

from ..engine import naming
from .saas_access_link import TOKEN_RE, send_and_forget, token_hash

#: Longest company name accepted (the instance's and its company's name).
MAX_COMPANY_NAME = 100
#: Longest e-mail address (RFC 5321's path limit).
MAX_EMAIL = 254

SIGNUP_STATES = [
    ("pending", "Waiting for Verification"),
    ("verified", "Verified"),
    ("failed", "Failed"),
]


class SaasSignup(models.Model):
    _name = "saas.signup"
    _description = "SaaS Signup Request"
    _order = "id desc"
    _rec_name = "email"

    email = fields.Char(required=True, readonly=True, index=True)
    company_name = fields.Char(required=True, readonly=True)
    subdomain = fields.Char(required=True, readonly=True)
    template_id = fields.Many2one("saas.template", required=True, readonly=True,
                                  ondelete="cascade")
    plan_id = fields.Many2one("saas.plan", required=True, readonly=True, ondelete="cascade")
    period = fields.Selection([("monthly", "Monthly"), ("yearly", "Yearly")], required=True,
                              default="monthly", readonly=True)
    remote_addr = fields.Char(string="From Address", readonly=True)
    token_hash = fields.Char(readonly=True, index=True, copy=False, groups="base.group_system")
    expires_at = fields.Datetime(readonly=True)
    state = fields.Selection(SIGNUP_STATES, default="pending", required=True, readonly=True)
    verified_at = fields.Datetime(readonly=True)
    error = fields.Text(readonly=True)
    instance_id = fields.Many2one("saas.instance", readonly=True, ondelete="set null")
    partner_id = fields.Many2one("res.partner", readonly=True, ondelete="set null")
    user_id = fields.Many2one("res.users", string="Portal User", readonly=True,
                              ondelete="set null")

    # -- checks shared by the page, the availability endpoint and the verification -------
    @api.model
    def _saas_subdomain_problem(self, subdomain):
        """Why ``subdomain`` cannot be had (a sentence), or None when it is free."""
        Instance = self.env["saas.instance"].sudo()
        try:
            naming.check_new_subdomain(subdomain, Instance._reserved_names())
            params = Instance._saas_params()
            database = naming.database_name(subdomain, params["base_domain"], params["routing"])
        except naming.NamingError as exc:
            return str(exc)
        if database in Instance._reserved_names():
            return self.env._("This name is reserved.")
        try:
            Instance._check_subdomain_free(subdomain)
        except ValidationError:
            return self.env._("This name is taken.")
        return None

    @api.model
    def _saas_offered_templates(self):
        return self.env["saas.template"].sudo().search(
            [("state", "=", "ready"), ("signup_offered", "=", True)])

    @api.model
    def _saas_offered_plans(self):
        return self.env["saas.plan"].sudo().search([("active", "=", True)])

    # -- request -----------------------------------------------------------------------
    @api.model
    def _saas_request(self, values, remote_addr):
        """A pending signup for the visitor's ``values``, its link mailed; a UserError says
        what to correct.  ``values``: email, company_name, subdomain, template (id), plan
        (id), period."""
        vals = self._saas_clean(values)
        cap = self.env["saas.settings"]._get("saas.signup_unverified_max")
        now = self.env.cr.now()  # the database clock, which _saas_redeem compares with
        if self.sudo().search_count([("email", "=", vals["email"]), ("state", "=", "pending"),
                                     ("expires_at", ">", now)]) >= cap:
            raise UserError(self.env._(
                "This address already has %(count)s sign-ups waiting for verification: use "
                "the link we sent, or wait for it to expire.", count=cap))
        token = secrets.token_urlsafe(32)
        hours = self.env["saas.settings"]._get("saas.signup_link_hours")
        signup = self.sudo().create({**vals, "remote_addr": remote_addr,
                                     "token_hash": token_hash(token),
                                     "expires_at": now + timedelta(hours=hours)})
        signup._send_verification(token)
        return signup

    @api.model
    def _saas_clean(self, values):
        email = email_normalize(values.get("email") or "", strict=True)
        if not email or len(email) > MAX_EMAIL:
            raise UserError(self.env._("Enter a valid e-mail address."))
        company = " ".join(str(values.get("company_name") or "").split())
        if not company or len(company) > MAX_COMPANY_NAME:
            raise UserError(self.env._("Enter your company's name (up to %(max)s characters).",
                                       max=MAX_COMPANY_NAME))
        subdomain = str(values.get("subdomain") or "").strip().lower()
        problem = self._saas_subdomain_problem(subdomain)
        if problem:
            raise UserError(self.env._("The address %(sub)s cannot be used: %(why)s",
                                       sub=naming.shown(subdomain), why=problem))
        template = self._saas_offered_templates().filtered(
            lambda t: str(t.id) == str(values.get("template")))
        plan = self._saas_offered_plans().filtered(
            lambda p: str(p.id) == str(values.get("plan")))
        if not template or not plan:
            raise UserError(self.env._("Choose one of the offered plans and templates."))
        period = values.get("period") if values.get("period") in ("monthly", "yearly") \
            else "monthly"
        return {"email": email, "company_name": company, "subdomain": subdomain,
                "template_id": template.id, "plan_id": plan.id, "period": period}

    def _send_verification(self, token):
        """Send the link now and keep no copy of the mail (see the module docstring)."""
        self.ensure_one()
        url = "%s/saas/signup/verify#%s" % (self.get_base_url(), token)
        template = self.env.ref("saas_manager.mail_template_signup_verify")
        # Rendered as the superuser: the visitor is the public user, who has no address
        # to send from.
        if send_and_forget(template.with_user(SUPERUSER_ID).with_context(saas_verify_url=url),
                           self.id):
            raise UserError(self.env._("We could not send the e-mail to %(email)s just now. "
                                       "Try again in a few minutes.", email=self.email))

    # -- verification --------------------------------------------------------------------
    @api.model
    def _saas_verify(self, token):
        """The signup of ``token`` with its instance queued or claimed; the token is spent.
        A UserError says why nothing happened (and leaves the token unspent only when the
        failure is the visitor's to fix, which it never is here: links are single use)."""
        signup = self._saas_redeem(token)
        if not signup:
            raise UserError(self.env._(
                "This link is not valid: it was already used or has expired. Sign up again."))
        return signup.with_user(SUPERUSER_ID)._saas_fulfil()

    @api.model
    def _saas_redeem(self, token):
        if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
            return self.browse()
        self.env.cr.execute(
            "SELECT id FROM saas_signup WHERE token_hash = %s AND state = 'pending' "
            "AND expires_at > (now() AT TIME ZONE 'UTC') FOR UPDATE", (token_hash(token),))
        row = self.env.cr.fetchone()
        if not row:
            return self.browse()
        signup = self.sudo().browse(row[0])
        signup.write({"state": "verified", "verified_at": fields.Datetime.now(),
                      "token_hash": False})
        return signup

    def _saas_fulfil(self):
        """Customer, portal user, instance, trial, provisioning (claimed when possible)."""
        problem = self._saas_subdomain_problem(self.subdomain)
        if problem:
            self.write({"state": "failed", "error": problem})
            raise UserError(self.env._(
                "The address %(sub)s was taken since you signed up: sign up again with "
                "another one.", sub=self.subdomain))
        partner, user = self._saas_customer()
        instance = self.env["saas.instance"].create({
            "name": self.company_name, "partner_id": partner.id, "subdomain": self.subdomain,
            "template_id": self.template_id.id, "plan_id": self.plan_id.id,
            "user_id": False})
        subscription = self.env["saas.subscription"].create(
            {"instance_id": instance.id, "period": self.period})
        subscription.action_activate()
        instance.state = "provisioning"
        self.write({"instance_id": instance.id, "partner_id": partner.id, "user_id": user.id})
        operation = self.env["saas.operation"]._queue(instance, "provision",
                                                      params={"pool": True}, wake=False)
        instance._commit()  # the runner re-reads the database: all of the above is there
        if instance._pool_take():
            operation._execute()
        else:
            operation._runner()._trigger()
        return self

    def _saas_customer(self):
        """The customer of this e-mail (a returning one keeps their partner, and so their
        one trial), and their portal user on the manager."""
        Users = self.env["res.users"].with_context(active_test=False)
        user = Users.search([("login", "=", self.email)], limit=1)
        if user:
            return user.partner_id.commercial_partner_id, user
        partner = self.env["res.partner"].search(
            [("email", "=ilike", self.email), ("is_company", "=", True)], limit=1)
        if not partner:
            partner = self.env["res.partner"].create({
                "name": self.company_name, "email": self.email, "is_company": True})
        user = Users.with_context(no_reset_password=True).create({
            "login": self.email, "partner_id": partner.id,
            "groups_id": [fields.Command.set([self.env.ref("base.group_portal").id])]})
        return partner, user

    @api.autovacuum
    def _gc_expired(self):
        """Forget pending signups a week after their link expired (their data with them)."""
        limit = fields.Datetime.now() - timedelta(days=7)
        self.sudo().search([("state", "=", "pending"), ("expires_at", "<", limit)]).unlink()
