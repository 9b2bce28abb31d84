from dateutil.relativedelta import relativedelta

from odoo import api, fields, models

SUBSCRIPTION_STATES = [
    ("draft", "Draft"),
    ("trial", "Trial"),
    ("active", "Active"),
    ("expired", "Expired"),
    ("suspended", "Suspended"),
    ("cancelled", "Cancelled"),
    ("terminated", "Terminated"),
]
PERIOD_LENGTH = {"monthly": relativedelta(months=1), "yearly": relativedelta(years=1)}


class SaasSubscription(models.Model):
    """What a customer pays for an instance, period after period."""

    _name = "saas.subscription"
    _description = "SaaS Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "date_start desc, id desc"

    name = fields.Char(required=True, readonly=True, copy=False, default="/")
    instance_id = fields.Many2one("saas.instance", required=True, index=True, tracking=True,
                                  ondelete="restrict")
    partner_id = fields.Many2one("res.partner", string="Customer", required=True, index=True,
                                 tracking=True, compute="_compute_partner_id", store=True,
                                 readonly=False, precompute=True)
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True)
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict",
                              compute="_compute_plan_id", store=True, readonly=False,
                              precompute=True)
    period = fields.Selection([("monthly", "Monthly"), ("yearly", "Yearly")],
                              default="monthly", required=True, tracking=True)
    date_start = fields.Date(string="Start", required=True, default=fields.Date.context_today,
                             tracking=True)
    date_end = fields.Date(string="End / Next Renewal", tracking=True,
                           compute="_compute_date_end", store=True, readonly=False,
                           precompute=True)
    auto_renew = fields.Boolean(default=True, tracking=True)
    trial_end = fields.Date(compute="_compute_trial_end", store=True, readonly=False,
                            precompute=True)
    grace_days = fields.Integer(default=7, help="Days after expiry before termination.")
    state = fields.Selection(SUBSCRIPTION_STATES, default="draft", required=True,
                             readonly=True, tracking=True, copy=False, index=True)
    currency_id = fields.Many2one(related="plan_id.currency_id", store=True)
    price = fields.Monetary(compute="_compute_price", store=True, readonly=False,
                            precompute=True, currency_field="currency_id")
    invoice_ids = fields.Many2many("account.move", string="Invoices", copy=False,
                                   domain=[("move_type", "=", "out_invoice")])
    invoice_count = fields.Integer(compute="_compute_invoice_count")
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 compute="_compute_company_id", store=True, readonly=False,
                                 precompute=True)

    _sql_constraints = [
        ("dates_order", "CHECK(date_end IS NULL OR date_end >= date_start)",
         "The end of a subscription cannot be before its start."),
        ("grace_positive", "CHECK(grace_days >= 0)", "Grace days cannot be negative."),
    ]

    @api.depends("instance_id")
    def _compute_partner_id(self):
        for sub in self:
            sub.partner_id = sub.instance_id.partner_id or sub.partner_id

    @api.depends("instance_id")
    def _compute_plan_id(self):
        for sub in self:
            sub.plan_id = sub.instance_id.plan_id or sub.plan_id

    @api.depends("instance_id")
    def _compute_company_id(self):
        for sub in self:
            sub.company_id = sub.instance_id.company_id or sub.company_id or self.env.company

    @api.depends("date_start", "period")
    def _compute_date_end(self):
        for sub in self:
            sub.date_end = (sub.date_start + PERIOD_LENGTH[sub.period]) if sub.date_start else False

    @api.depends("date_start", "plan_id")
    def _compute_trial_end(self):
        for sub in self:
            days = sub.plan_id.trial_days
            sub.trial_end = (sub.date_start + relativedelta(days=days)
                             if days and sub.date_start else False)

    @api.depends("plan_id", "period")
    def _compute_price(self):
        for sub in self:
            sub.price = sub.plan_id.price_for(sub.period) if sub.plan_id else 0.0

    def _compute_invoice_count(self):
        for sub in self:
            sub.invoice_count = len(sub.invoice_ids)

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("name", "/") == "/":
                vals["name"] = self.env["ir.sequence"].next_by_code("saas.subscription") or "/"
        return super().create(vals_list)

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type")
        action["domain"] = [("id", "in", self.invoice_ids.ids)]
        action["context"] = {"default_move_type": "out_invoice",
                             "default_partner_id": self.partner_id.id}
        return action
