"""Analytics side of a subscription: its MRR, and the log row written when it changes
(see :mod:`.saas_subscription_log` for the rules)."""

from odoo import api, fields, models

#: States in which a subscription counts in the MRR.
PAYING_STATES = ("active", "expiring", "suspended")
#: The fields whose change may change the MRR or the state counts.
TRACKED_FIELDS = {"state", "price", "period", "plan_id"}


class SaasSubscription(models.Model):
    _inherit = "saas.subscription"

    log_ids = fields.One2many("saas.subscription.log", "subscription_id", string="MRR Log",
                              groups="saas_manager.group_saas_user")
    mrr = fields.Monetary(string="MRR", compute="_compute_mrr", currency_field="currency_id",
                          help="Monthly recurring revenue: the price per month while paying.")

    @api.depends("state", "price", "period")
    def _compute_mrr(self):
        for sub in self:
            paying = sub.state in PAYING_STATES
            sub.mrr = paying and (sub.price / 12.0 if sub.period == "yearly" else sub.price)

    @api.model_create_multi
    def create(self, vals_list):
        subs = super().create(vals_list)
        subs.filtered(lambda s: s.state != "draft")._log_changes(
            {sub.id: ("draft", 0.0) for sub in subs})
        return subs

    def write(self, vals):
        if not TRACKED_FIELDS.intersection(vals):
            return super().write(vals)
        before = {sub.id: (sub.state, sub.mrr) for sub in self}
        result = super().write(vals)
        self._log_changes(before)
        return result

    def _log_changes(self, before):
        """One log row per subscription whose state or MRR changed since ``before``
        (``{id: (state, mrr)}``)."""
        rows = []
        for sub in self:
            state, mrr = before[sub.id]
            currency = sub.currency_id
            if sub.state == state and currency.is_zero(sub.mrr - mrr):
                continue
            rows.append(sub._log_values(state, mrr))
        if rows:
            self.env["saas.subscription.log"].sudo().create(rows)

    def _log_values(self, state, mrr):
        """The row of a change from ``(state, mrr)`` to the present (dated today, or
        ``saas_log_date`` from the context: the upgrade's backfill).  The new value is
        converted at today's rate; the change is measured from what the previous row
        counted, so an ending takes out exactly what the subscription was counted for."""
        day = self.env.context.get("saas_log_date") or fields.Date.context_today(self)
        company = self.company_id
        previous = self.env["saas.subscription.log"].sudo().search(
            [("subscription_id", "=", self.id)], order="date desc, id desc", limit=1)
        # Rounded to the currency's cents: sums of rows are then exact.
        after = self.currency_id._convert(self.mrr, company.currency_id, company, day)
        return {
            "subscription_id": self.id, "date": day, "company_id": company.id,
            "partner_id": self.commercial_partner_id.id, "plan_id": self.plan_id.id,
            "template_id": self.instance_id.template_id.id, "state_from": state,
            "state_to": self.state, "currency_id": self.currency_id.id,
            "mrr_before": self.currency_id.round(mrr),
            "mrr_after": self.currency_id.round(self.mrr), "mrr_after_company": after,
            "mrr_before_company": previous.mrr_after_company,
            "mrr_change_company": after - previous.mrr_after_company,
        }
