"""The MRR log: what each subscription was worth, changed by what, on which day.

Odoo's ORM keeps only the present; recurring-revenue analytics need the past
(what the MRR was on 31 January, how much of it was new, lost, upgraded).
So every change of a subscription's state or monthly value writes one row
here, at the moment it happens, and the reports (``report/``) are SQL views
over these rows: MRR at a date is the sum of the changes up to that date.

The rules, also in CONFIGURATION.md ("Analytics"):

* **MRR** of a subscription: its price per month (a yearly price / 12) while
  it is active, expiring or suspended (a suspended customer still owes the
  period); 0 in trial, draft and once it has ended.
* **Currency**: each row keeps the value in the subscription's currency and
  in its company's currency, converted at the rate of the row's date, the way
  an accountant books it: history never moves with later rates.  The change
  in the company's currency is measured from the previous row's converted
  value, so a churn takes out exactly what the subscription was counted for
  and the MRR of a company is the sum of its subscriptions' last values.
* **Date**: the day the change was recorded (a plan change applied at
  renewal is recorded when the renewal is invoiced, up to 7 days early).
"""

from odoo import api, fields, models

from .saas_subscription import SUBSCRIPTION_STATES


class SaasSubscriptionLog(models.Model):
    _name = "saas.subscription.log"
    _description = "SaaS Subscription MRR Log"
    _order = "date, id"

    subscription_id = fields.Many2one("saas.subscription", required=True, index=True,
                                      ondelete="cascade", readonly=True)
    date = fields.Date(required=True, index=True, readonly=True)
    company_id = fields.Many2one("res.company", required=True, index=True, readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    plan_id = fields.Many2one("saas.plan", readonly=True)
    template_id = fields.Many2one("saas.template", readonly=True)
    state_from = fields.Selection(SUBSCRIPTION_STATES, readonly=True)
    state_to = fields.Selection(SUBSCRIPTION_STATES, required=True, readonly=True)
    currency_id = fields.Many2one("res.currency", required=True, readonly=True)
    mrr_before = fields.Monetary(readonly=True)
    mrr_after = fields.Monetary(readonly=True)
    company_currency_id = fields.Many2one(related="company_id.currency_id",
                                          string="Company Currency")
    mrr_change_company = fields.Monetary(
        string="MRR Change", currency_field="company_currency_id", readonly=True,
        help="MRR After minus the previous row's, in the company's currency.")
    mrr_before_company = fields.Monetary(
        string="MRR Before", currency_field="company_currency_id", readonly=True,
        help="The previous row's MRR After: what the subscription was counted for.")
    mrr_after_company = fields.Monetary(
        string="MRR After", currency_field="company_currency_id", readonly=True,
        help="The new monthly value, converted at the rate of the row's date.")

    @api.model
    def _saas_mrr_by_company(self, domain=()):
        """``{company: MRR}`` in each company's currency: the sum of the changes, which is
        the sum of every subscription's last converted value (the figure of the
        dashboard, the metrics endpoint and the reports)."""
        return dict(self.sudo()._read_group(list(domain), ["company_id"],
                                            ["mrr_change_company:sum"]))
