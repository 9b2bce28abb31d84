from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from ..engine import naming

INSTANCE_STATES = [
    ("draft", "Draft"),
    ("provisioning", "Provisioning"),
    ("active", "Active"),
    ("suspended", "Suspended"),
    ("terminated", "Terminated"),
    ("failed", "Failed"),
]
#: States in which the client database may not exist yet, so names may change.
RENAMEABLE_STATES = ("draft", "failed")


class SaasInstance(models.Model):
    """One client database, reached at ``<subdomain>.<base domain>``."""

    _name = "saas.instance"
    _description = "SaaS Instance"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "create_date desc, id desc"

    name = fields.Char(required=True, tracking=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, index=True, tracking=True)
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True)
    subdomain = fields.Char(required=True, tracking=True, copy=False)
    subdomain_released = fields.Boolean(
        default=False, readonly=True, copy=False,
        help="A terminated instance whose subdomain may be given to a new instance.")
    database_name = fields.Char(
        compute="_compute_location", store=True, readonly=True, precompute=True, copy=False)
    host = fields.Char(compute="_compute_location", store=True, readonly=True, precompute=True)
    url = fields.Char(string="URL", compute="_compute_location", store=True, readonly=True,
                      precompute=True)
    template_id = fields.Many2one("saas.template", required=True, tracking=True,
                                  ondelete="restrict")
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict")
    subscription_id = fields.Many2one(
        "saas.subscription", string="Current Subscription", copy=False,
        domain="[('instance_id', '=', id)]")
    subscription_ids = fields.One2many("saas.subscription", "instance_id",
                                       string="Subscriptions")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    state = fields.Selection(INSTANCE_STATES, default="draft", required=True, readonly=True,
                             tracking=True, copy=False, index=True)
    provision_step = fields.Char(readonly=True, copy=False,
                                 help="Step being run, or the step that failed.")
    provision_timings = fields.Text(readonly=True, copy=False,
                                    help="Seconds spent in each provisioning step.")
    provision_seconds = fields.Float(string="Provisioning Time (s)", readonly=True, copy=False,
                                     digits=(16, 2))
    last_error = fields.Text(readonly=True, copy=False)
    user_count = fields.Integer(string="Users Used", readonly=True, copy=False)
    user_limit = fields.Integer(related="plan_id.max_users", string="Users Allowed")
    storage_mb = fields.Float(string="Storage Used (MB)", readonly=True, copy=False,
                              digits=(16, 1))
    storage_limit_gb = fields.Integer(related="plan_id.storage_gb", string="Storage Allowed (GB)")
    health_status = fields.Selection(
        [("unknown", "Unknown"), ("up", "Up"), ("down", "Down")],
        default="unknown", readonly=True, copy=False)
    health_checked_at = fields.Datetime(string="Last Health Check", readonly=True, copy=False)
    health_response_ms = fields.Integer(string="Response Time (ms)", readonly=True, copy=False)
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 default=lambda self: self.env.company)

    @api.depends("subdomain")
    def _compute_location(self):
        params = self._saas_params()
        for instance in self:
            try:
                naming.check_subdomain(instance.subdomain)
                host = naming.host_for(instance.subdomain, params["base_domain"])
                database = naming.database_name(
                    instance.subdomain, params["base_domain"], params["routing"])
            except naming.NamingError:
                host = database = False  # _check_subdomain reports the reason
            instance.host = host
            instance.database_name = database
            instance.url = host and "https://%s" % host

    def _compute_subscription_count(self):
        counts = dict(self.env["saas.subscription"]._read_group(
            [("instance_id", "in", self.ids)], ["instance_id"], ["__count"]))
        for instance in self:
            instance.subscription_count = counts.get(instance, 0)

    # -- configuration -------------------------------------------------------
    @api.model
    def _saas_params(self):
        """Base domain, routing mode and extra reserved names from the settings."""
        get = self.env["ir.config_parameter"].sudo().get_param
        reserved = get("saas.reserved_subdomains", "") or ""
        return {
            "base_domain": (get("saas.base_domain", "") or "").strip().lower(),
            "routing": get("saas.routing_mode", naming.ROUTING_HOST) or naming.ROUTING_HOST,
            "reserved": {name.strip().lower() for name in reserved.split(",") if name.strip()},
        }

    @api.model
    def _reserved_names(self):
        """Subdomains and database names that no customer may take."""
        templates = self.env["saas.template"].sudo().with_context(active_test=False).search(
            [("database_name", "!=", False)])
        reserved = set(self._saas_params()["reserved"])
        reserved.update(templates.mapped("database_name"))
        reserved.add(self.env.cr.dbname)
        return reserved

    # -- constraints ---------------------------------------------------------
    @api.constrains("subdomain", "database_name", "subdomain_released")
    def _check_subdomain(self):
        reserved = self._reserved_names()
        params = self._saas_params()
        if not params["base_domain"]:
            raise ValidationError(self.env._(
                "Set the base domain in SaaS Manager > Configuration > Settings first."))
        for instance in self:
            try:
                naming.check_subdomain(instance.subdomain, reserved)
                naming.database_name(instance.subdomain, params["base_domain"], params["routing"])
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
            if instance.database_name in reserved:
                raise ValidationError(self.env._(
                    "The database name %(name)r is reserved.", name=instance.database_name))

    @api.model
    def _check_subdomain_free(self, subdomain, exclude_ids=()):
        """Refuse a subdomain (or its database name) held by an unreleased instance.

        Checked before the INSERT/UPDATE so the operator gets a clear message;
        the partial unique indexes of :meth:`init` still settle races.
        """
        params = self._saas_params()
        try:
            database = naming.database_name(subdomain, params["base_domain"], params["routing"])
        except naming.NamingError:
            return  # _check_subdomain reports it with the full reason
        clash = self.with_context(active_test=False).sudo().search([
            ("id", "not in", list(exclude_ids)), ("subdomain_released", "=", False),
            "|", ("subdomain", "=", subdomain), ("database_name", "=", database),
        ], limit=1)
        if clash:
            raise ValidationError(self.env._(
                "The subdomain %(sub)r is already used by instance %(name)s.",
                sub=subdomain, name=clash.name))

    def init(self):
        """Unique subdomain and database among unreleased instances, race-proof."""
        for column in ("subdomain", "database_name"):
            self.env.cr.execute(SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS %s ON saas_instance (%s) "
                "WHERE subdomain_released IS NOT TRUE",
                SQL.identifier("saas_instance_%s_live_uniq" % column), SQL.identifier(column)))

    # -- ORM -------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("subdomain"):
                self._check_subdomain_free(vals["subdomain"])
        return super().create(vals_list)

    def write(self, vals):
        if "subdomain" in vals:
            if self.filtered(lambda i: i.state not in RENAMEABLE_STATES):
                raise UserError(self.env._(
                    "The subdomain of an instance whose database exists cannot be changed."))
            if vals["subdomain"]:
                self._check_subdomain_free(vals["subdomain"], exclude_ids=self.ids)
        return super().write(vals)

    # -- actions -----------------------------------------------------------------
    def action_release_subdomain(self):
        """Let a new instance take the subdomain of this terminated one."""
        self.check_access("write")
        if self.filtered(lambda i: i.state != "terminated"):
            raise UserError(self.env._("Only terminated instances can release their subdomain."))
        self.subdomain_released = True
        for instance in self:
            instance.message_post(body=self.env._("Subdomain %(sub)s released.",
                                                  sub=instance.subdomain))
        return True

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_subscription")
        action["domain"] = [("instance_id", "=", self.id)]
        action["context"] = {"default_instance_id": self.id,
                             "default_partner_id": self.partner_id.id,
                             "default_plan_id": self.plan_id.id}
        return action
