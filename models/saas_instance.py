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
#: States in which an instance serves no database, so its record may be deleted.
DELETABLE_STATES = ("draft", "failed", "terminated")


class SaasInstance(models.Model):
    """One client database, reached at ``<subdomain>.<base domain>``.

    This file holds what an instance *is* (names, constraints, ORM, simple
    actions); each concern adds its fields and methods in its own ``_inherit``
    file: provisioning, access (suspend, reactivate, terminate), usage and
    limits, health.
    """

    _name = "saas.instance"
    _description = "SaaS Instance"
    _inherit = ["mail.thread", "mail.activity.mixin", "saas.protected.mixin",
                "saas.server.mixin", "saas.lifecycle.mixin", "saas.operation.mixin"]
    _saas_operation_link = "instance_id"
    _order = "create_date desc, id desc"

    name = fields.Char(required=True, tracking=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, index=True, tracking=True)
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True)
    subdomain = fields.Char(required=True, tracking=True, copy=False)
    subdomain_released = fields.Boolean(
        default=False, readonly=True, copy=False,
        help="A terminated instance whose subdomain may be given to a new instance.",
        groups="saas_manager.group_saas_user", saas_protected=True)
    database_name = fields.Char(
        compute="_compute_location", store=True, readonly=True, precompute=True, copy=False,
        groups="saas_manager.group_saas_user", saas_protected=True)
    host = fields.Char(compute="_compute_location", store=True, readonly=True, precompute=True,
                       saas_protected=True)
    url = fields.Char(string="URL", compute="_compute_url", readonly=True, saas_protected=True)
    template_id = fields.Many2one("saas.template", required=True, tracking=True,
                                  ondelete="restrict")
    template_revision = fields.Integer(readonly=True, copy=False,
                                       help="Revision of the template this instance was cloned "
                                            "from (incremented at each lock).",
                                            groups="saas_manager.group_saas_user",
                                            saas_protected=True)
    template_built_at = fields.Datetime(readonly=True, copy=False,
                                        help="When that template revision was built.",
                                        groups="saas_manager.group_saas_user", saas_protected=True)
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict")
    subscription_id = fields.Many2one(
        "saas.subscription", string="Current Subscription", copy=False, readonly=True,
        domain="[('instance_id', '=', id)]", saas_protected=True)
    subscription_ids = fields.One2many("saas.subscription", "instance_id",
                                       string="Subscriptions")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    operation_ids = fields.One2many("saas.operation", "instance_id", string="Operations",
                                    groups="saas_manager.group_saas_user")
    state = fields.Selection(INSTANCE_STATES, default="draft", required=True, readonly=True,
                             tracking=True, copy=False, index=True, saas_protected=True)
    user_id = fields.Many2one("res.users", string="Responsible", tracking=True,
                              default=lambda self: self.env.user,
                              help="Gets the health alerts of this instance.",
                              groups="saas_manager.group_saas_user")
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 default=lambda self: self.env.company)
    custom_domain = fields.Char(
        tracking=True, copy=False,
        help="The customer's own domain (e.g. erp.acme.com), served besides the subdomain.")
    owned_database = fields.Char(
        readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="Recorded before the client database is created: the only database name "
             "saas_manager will ever drop for this instance.", saas_protected=True)
    admin_login = fields.Char(
        string="Customer Admin Login", readonly=True, copy=False,
        help="The customer's administrator. Its password is never stored: the customer "
             "chooses it through the single-use welcome link.", saas_protected=True)

    @api.depends("subdomain", "server_id")
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

    @api.depends("host", "server_id")
    def _compute_url(self):
        """Not stored: the scheme and port come from odoo.conf, which a restart may
        change without any write here, and a stored URL would keep the old ones."""
        for instance in self:
            instance.url = instance.host and instance._saas_public_url(instance.host)

    def _compute_subscription_count(self):
        counts = dict(self.env["saas.subscription"]._read_group(
            [("instance_id", "in", self.ids)], ["instance_id"], ["__count"]))
        for instance in self:
            instance.subscription_count = counts.get(instance, 0)

    # -- configuration -------------------------------------------------------
    @api.model
    def _saas_params(self):
        """Base domain, routing mode and extra reserved names from the settings."""
        get = self.env["saas.settings"]._get
        reserved = get("saas.reserved_subdomains")
        return {
            "base_domain": get("saas.base_domain").lower(),
            "routing": get("saas.routing_mode"),
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

    @api.constrains("custom_domain")
    def _check_custom_domain(self):
        base_domain = self._saas_params()["base_domain"]
        for instance in self.filtered("custom_domain"):
            try:
                naming.check_domain(instance.custom_domain, "custom domain")
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
            if base_domain and (instance.custom_domain == base_domain
                                or instance.custom_domain.endswith("." + base_domain)):
                raise ValidationError(self.env._(
                    "A custom domain cannot be under the base domain %(base)s: it would take "
                    "another instance's traffic.", base=base_domain))
            if self.sudo().search_count([("id", "!=", instance.id),
                                         ("custom_domain", "=", instance.custom_domain),
                                         ("state", "!=", "terminated")]):
                raise ValidationError(self.env._("The domain %(domain)s is already used.",
                                                 domain=instance.custom_domain))

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

    #: Live names are unique, race-proof: the second of two concurrent creates waits for
    #: the first and then fails on one of these.  They are EXCLUDE constraints (btree, =),
    #: not partial unique indexes, because only a *constraint* named in _sql_constraints
    #: gets its message shown: Odoo (odoo/service/model.py, _as_validation_error) maps a
    #: violated constraint's name to that message, and a unique index's name is not one.
    _sql_constraints = [
        ("subdomain_live_excl",
         "EXCLUDE USING btree (subdomain WITH =) WHERE (subdomain_released IS NOT TRUE)",
         "This subdomain is already used by another instance (it was taken a moment ago)."),
        ("database_name_live_excl",
         "EXCLUDE USING btree (database_name WITH =) WHERE (subdomain_released IS NOT TRUE)",
         "This database name is already used by another instance (it was taken a moment "
         "ago)."),
        ("custom_domain_live_excl",
         "EXCLUDE USING btree (custom_domain WITH =) WHERE (state <> 'terminated')",
         "This custom domain is already used by another instance."),
    ]
    #: The partial unique indexes that the constraints above replace (earlier versions).
    _OLD_UNIQUE_INDEXES = ("saas_instance_subdomain_live_uniq",
                           "saas_instance_database_name_live_uniq",
                           "saas_instance_custom_domain_live_uniq")

    def init(self):
        """Drop the old partial unique indexes: the EXCLUDE constraints of
        ``_sql_constraints`` (added by Odoo right after the models' init) replace them."""
        result = super().init()
        for index in self._OLD_UNIQUE_INDEXES:
            self.env.cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(index)))
        return result

    # -- ORM -------------------------------------------------------------------
    @api.model
    def _saas_check_names(self, vals):
        """Refuse a malformed subdomain or custom domain in ``vals``, before any query.

        Only the form is checked here (no database needed): a NUL byte or a
        non-text value gets this message rather than psycopg2's "A string
        literal cannot contain NUL" from the uniqueness search.  Reserved
        names, the base domain and uniqueness follow in create/write and in
        the constraints.
        """
        try:
            if "subdomain" in vals:
                naming.check_new_subdomain(vals["subdomain"])
            domain = vals.get("custom_domain", False)
            if domain is not False and domain is not None and domain != "":
                naming.check_domain(domain, "custom domain")
        except naming.NamingError as exc:
            raise ValidationError(str(exc)) from exc

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._saas_check_names(vals)
            if vals.get("subdomain"):
                self._check_subdomain_free(vals["subdomain"])
        return super().create(vals_list)

    def write(self, vals):
        self._saas_check_names(vals)
        if "plan_id" in vals and not self.env.su and self.filtered("subscription_id"):
            raise UserError(self.env._(
                "This instance's plan follows its subscription: use Change Plan there."))
        if "subdomain" in vals:
            if self.sudo().filtered("owned_database"):
                raise UserError(self.env._(
                    "This instance still owns a database from an earlier attempt: retry the "
                    "provisioning (which removes it) before changing the subdomain."))
            if self.filtered(lambda i: i.state not in RENAMEABLE_STATES):
                raise UserError(self.env._(
                    "The subdomain of an instance whose database exists cannot be changed."))
            if vals["subdomain"]:
                self._check_subdomain_free(vals["subdomain"], exclude_ids=self.ids)
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_live(self):
        """Every way of deleting (form, list, RPC) ends here: a record whose database is
        being made or is served would leave that database and its customer behind,
        unowned.  Termination backs it up and drops it first."""
        live = self.filtered(lambda i: i.state not in DELETABLE_STATES)[:1]
        if live:
            states = dict(self._fields["state"]._description_selection(self.env))
            raise UserError(self.env._(
                "%(name)s is %(state)s: only draft, failed and terminated instances can be "
                "deleted (terminate it, or cancel its provisioning, first).",
                name=live.name, state=states[live.state]))
        owning = self.filtered("owned_database")[:1]
        if owning:
            raise UserError(self.env._(
                "%(name)s still owns the database %(db)s (a failed step could not remove "
                "it): terminate the instance, which backs the database up and drops it, "
                "before deleting the record.", name=owning.name, db=owning.owned_database))

    # -- actions -----------------------------------------------------------------
    def action_release_subdomain(self):
        """Let a new instance take the subdomain of this terminated one."""
        self.check_access("write")
        if self.filtered(lambda i: i.state != "terminated"):
            raise UserError(self.env._("Only terminated instances can release their subdomain."))
        self.sudo().subdomain_released = True
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

    def action_open(self):
        """Open the client database in a new tab."""
        self.ensure_one()
        if self.state != "active":
            raise UserError(self.env._("Only active instances can be opened."))
        return {"type": "ir.actions.act_url", "url": "%s/odoo" % self.url, "target": "new"}

    def action_create_subscription(self):
        """A draft subscription for this instance's plan and customer, opened for review."""
        self.ensure_one()
        self.check_access("write")
        subscription = self.env["saas.subscription"].create({"instance_id": self.id})
        return {"type": "ir.actions.act_window", "res_model": "saas.subscription",
                "res_id": subscription.id, "view_mode": "form", "target": "current"}

