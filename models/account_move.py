from odoo import fields, models
from odoo.tools import SQL

#: payment_state values that mean "nothing left to pay".
SETTLED_PAYMENT_STATES = ("paid", "in_payment", "reversed")


class AccountMove(models.Model):
    """Subscription invoices: which subscription and which period they bill."""

    _name = "account.move"
    _inherit = ["account.move", "saas.protected.mixin"]

    saas_subscription_id = fields.Many2one(
        "saas.subscription", string="SaaS Subscription", index="btree_not_null", copy=False,
        readonly=True, ondelete="restrict", saas_protected=True)
    saas_invoice_kind = fields.Selection(
        [("period", "Subscription Period"), ("prorata", "Plan Upgrade (Pro-rata)")],
        string="SaaS Invoice Kind", copy=False, readonly=True, saas_protected=True)
    saas_period_start = fields.Date(string="Period Start", copy=False, readonly=True,
                                    saas_protected=True)
    saas_period_end = fields.Date(string="Period End", copy=False, readonly=True,
                                  help="Last day billed (inclusive).", saas_protected=True)
    saas_overdue_notified = fields.Boolean(
        copy=False, readonly=True, help="The customer was told this invoice is overdue.",
        saas_protected=True)

    def init(self):
        """One live invoice per subscription period, whatever runs twice or concurrently."""
        result = super().init()
        self.env.cr.execute(SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS account_move_saas_period_uniq "
            "ON account_move (saas_subscription_id, saas_period_start) "
            "WHERE saas_invoice_kind = 'period' AND state <> 'cancel'"))
        return result

    def _saas_is_overdue(self, today, grace_days):
        """Posted, not settled, and its due date plus ``grace_days`` is behind us."""
        self.ensure_one()
        due = self.invoice_date_due or self.invoice_date
        return (self.state == "posted" and self.payment_state not in SETTLED_PAYMENT_STATES
                and bool(due) and fields.Date.add(due, days=grace_days) < today)

    def _compute_payment_state(self):
        """A payment on a subscription invoice wakes the expiry cron, which lifts a
        suspension for non-payment at once instead of at its next daily run."""
        result = super()._compute_payment_state()
        settled = self.filtered(lambda m: m.saas_subscription_id
                                and m.payment_state in SETTLED_PAYMENT_STATES
                                and m.saas_subscription_id.state == "suspended")
        if settled:
            self.env.ref("saas_manager.ir_cron_saas_expiry").sudo()._trigger()
        return result
