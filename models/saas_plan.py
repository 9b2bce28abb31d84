from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..engine import fleet, retention
from ..engine import modules as engine_modules


class SaasPlan(models.Model):
    """A pricing tier: what a customer pays and how much the instance may use."""

    _name = "saas.plan"
    _description = "SaaS Plan"
    _order = "sequence, price_monthly, id"

    name = fields.Char(required=True, translate=True)
    code = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    max_users = fields.Integer(
        default=0, help="Active internal users allowed; 0 = unlimited.")
    storage_gb = fields.Integer(
        string="Storage (GB)", default=0,
        help="Database plus filestore size allowed, in GB; 0 = unlimited.")
    company_id = fields.Many2one(
        "res.company", index=True,
        help="The company that sells this plan; empty: every company's subscriptions may "
             "use it.")
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id)
    currency_mismatch = fields.Boolean(compute="_compute_currency_mismatch")
    price_monthly = fields.Monetary(string="Monthly Price", currency_field="currency_id")
    price_yearly = fields.Monetary(string="Yearly Price", currency_field="currency_id")
    trial_days = fields.Integer(default=14, help="Free days before the first invoice; 0 = none.")
    popular = fields.Boolean(help="Highlighted on pricing cards.")
    description = fields.Text(translate=True)
    features = fields.Text(translate=True, help="One feature per line, shown on pricing cards.")
    product_id = fields.Many2one(
        "product.product", string="Invoice Product", domain=[("type", "=", "service")],
        help="Service product used on the subscription invoices.")
    subscription_ids = fields.One2many("saas.subscription", "plan_id", string="Subscriptions")
    allowed_module_names = fields.Text(
        string="Allowed Apps",
        help="Modules that may be installed on this plan's instances on request (technical "
             "names, separated by commas or spaces); empty: any module of the server.")
    # Backups (see saas_instance_backup.py and CONFIGURATION.md, "Backups").
    backup_interval_hours = fields.Integer(
        string="Backup Every (hours)", default=24,
        help="Scheduled backups of each instance: one per this many hours (24 = daily), each "
             "instance at its own fixed time within the period; 0 = no scheduled backups.")
    backup_keep_daily = fields.Integer(
        string="Daily Backups Kept", default=7,
        help="The newest backup of each of this many most recent days with a backup.")
    backup_keep_weekly = fields.Integer(
        string="Weekly Backups Kept", default=4,
        help="The newest backup of each of this many most recent weeks with a backup.")
    backup_keep_monthly = fields.Integer(
        string="Monthly Backups Kept", default=12,
        help="The newest backup of each of this many most recent months with a backup.")

    _sql_constraints = [
        ("code_uniq", "unique(code)", "The plan code must be unique."),
        ("limits_positive", "CHECK(max_users >= 0 AND storage_gb >= 0 AND trial_days >= 0)",
         "Limits and trial days cannot be negative."),
        ("backups_positive",
         "CHECK(backup_interval_hours >= 0 AND backup_keep_daily >= 0 "
         "AND backup_keep_weekly >= 0 AND backup_keep_monthly >= 0)",
         "Backup frequency and retention cannot be negative."),
        ("prices_positive", "CHECK(price_monthly >= 0 AND price_yearly >= 0)",
         "Prices cannot be negative."),
    ]

    @api.depends("currency_id", "company_id")
    def _compute_currency_mismatch(self):
        """Invoiced in another currency than its company's (the plan's, or the current
        one's when the plan is for every company): the invoices then need that
        currency's rates, and company totals convert (CONFIGURATION.md, Currencies)."""
        for plan in self:
            company = plan.company_id or self.env.company
            plan.currency_mismatch = plan.currency_id != company.currency_id

    @api.constrains("allowed_module_names")
    def _check_allowed_module_names(self):
        for plan in self:
            for name in fleet.split_modules(plan.allowed_module_names):
                if not engine_modules.NAME_RE.fullmatch(name):
                    raise ValidationError(self.env._("%(name)r is not a module name.",
                                                     name=name))

    def _saas_refused_modules(self, names):
        """Those of ``names`` the plan does not allow (none when it lists no module)."""
        self.ensure_one()
        allowed = set(fleet.split_modules(self.allowed_module_names))
        return [name for name in names if allowed and name not in allowed]

    def price_for(self, period):
        """The price of one ``period`` ('monthly' or 'yearly')."""
        self.ensure_one()
        return self.price_yearly if period == "yearly" else self.price_monthly

    @api.constrains("code")
    def _check_code(self):
        for plan in self:
            if not (plan.code or "").replace("_", "").isalnum():
                raise ValidationError(self.env._(
                    "The plan code may only contain letters, digits and '_'."))

    def _saas_retention_policy(self):
        """The plan's grandfather-father-son retention of scheduled backups."""
        self.ensure_one()
        return retention.Policy(daily=self.backup_keep_daily, weekly=self.backup_keep_weekly,
                                monthly=self.backup_keep_monthly)
