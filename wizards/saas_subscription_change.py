from odoo import api, fields, models
from odoo.exceptions import UserError


class SaasSubscriptionChange(models.TransientModel):
    """Change a subscription's plan or period.

    Policy (CONFIGURATION.md, "Plan changes"): in draft and trial the change is
    immediate and free. On a paid period, an upgrade (a higher price for the
    same period) is immediate and billed pro-rata for the days left; a
    downgrade or a change of period takes effect at the next renewal, so
    nothing already paid is refunded.
    """

    _name = "saas.subscription.change"
    _description = "Change a SaaS Subscription's Plan"

    subscription_id = fields.Many2one("saas.subscription", required=True, ondelete="cascade")
    current_plan_id = fields.Many2one(related="subscription_id.plan_id", string="Current Plan")
    current_period = fields.Selection(related="subscription_id.period", string="Current Period")
    currency_id = fields.Many2one(related="subscription_id.currency_id")
    company_id = fields.Many2one(related="subscription_id.company_id")
    plan_id = fields.Many2one("saas.plan", string="New Plan", required=True)
    period = fields.Selection([("monthly", "Monthly"), ("yearly", "Yearly")], required=True,
                              string="New Period",
                              compute="_compute_period", store=True, readonly=False)
    timing = fields.Selection([("now", "Now"), ("renewal", "At the next renewal")],
                              compute="_compute_outcome")
    prorata_amount = fields.Monetary(string="Billed Now", compute="_compute_outcome",
                                     currency_field="currency_id")

    @api.depends("subscription_id")
    def _compute_period(self):
        for wizard in self:
            wizard.period = wizard.subscription_id.period

    @api.depends("plan_id", "period", "subscription_id")
    def _compute_outcome(self):
        for wizard in self:
            sub = wizard.subscription_id
            new_price = wizard.plan_id.price_for(wizard.period) if wizard.plan_id else 0.0
            if sub.state in ("draft", "trial"):
                wizard.timing, wizard.prorata_amount = "now", 0.0
            elif wizard.period == sub.period and new_price > sub.price:
                wizard.timing = "now"
                wizard.prorata_amount = sub._prorata_amount(new_price)
            else:
                wizard.timing, wizard.prorata_amount = "renewal", 0.0

    def action_confirm(self):
        self.ensure_one()
        sub = self.subscription_id
        sub.check_access("write")
        if sub.state not in ("draft", "trial", "active", "expiring"):
            raise UserError(self.env._("Only draft or running subscriptions change plan."))
        if (self.plan_id, self.period) == (sub.plan_id, sub.period):
            raise UserError(self.env._("This is already the subscription's plan."))
        sub._check_plan_offered(self.plan_id)
        if self.timing == "renewal" and (self.plan_id, self.period) == (
                sub.next_plan_id, sub.next_period):
            raise UserError(self.env._("This change is already planned for %(date)s.",
                                       date=sub.date_end))
        sub = sub.sudo()
        if self.timing == "renewal":
            sub.write({"next_plan_id": self.plan_id.id, "next_period": self.period})
            sub.message_post(body=self.env._(
                "From %(date)s: plan %(plan)s, %(period)s.", date=sub.date_end,
                plan=self.plan_id.name, period=self.period))
            return True
        if self.prorata_amount > 0:
            sub._invoice_prorata(self.prorata_amount, self.env._(
                "Upgrade from %(old)s to %(new)s, %(start)s to %(end)s (pro-rata)",
                old=sub.plan_id.name, new=self.plan_id.name,
                start=fields.Date.context_today(self), end=sub.date_end))
        sub.write({"plan_id": self.plan_id.id, "period": self.period,
                   "next_plan_id": False, "next_period": False})
        if sub.instance_id.subscription_id == sub:  # limits follow the current one only
            sub.instance_id.plan_id = self.plan_id
        return True
