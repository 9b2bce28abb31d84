"""What a customer does to their subscription from the portal (``controllers/portal.py``).

The rules are the backend's (the *Change Plan* wizard, the lifecycle
buttons), run as superuser once the controller has checked that the portal
user may read the subscription; each of them re-checks the subscription's
state, so a stale page cannot cancel a terminated subscription nor schedule
the same downgrade twice.
"""

from odoo import models
from odoo.exceptions import UserError
from odoo.tools import float_compare


class SaasSubscription(models.Model):
    _inherit = "saas.subscription"

    def _portal_plans(self):
        """The plans this subscription may move to (see :meth:`_check_plan_offered`)."""
        self.ensure_one()
        plans = self.env["saas.plan"].sudo().search([("currency_id", "=", self.currency_id.id)])
        return plans.filtered(self._plan_offered)

    def _plan_offered(self, plan):
        return (plan.active and plan.currency_id == self.currency_id
                and (not plan.company_id or plan.company_id == self.company_id))

    def _check_plan_offered(self, plan):
        """Refuse an archived plan, another company's, or one in another currency."""
        if not plan.exists() or not self._plan_offered(plan.sudo()):
            raise UserError(self.env._("This plan is not offered for this subscription."))

    def _portal_change_preview(self, plan, period):
        """The outcome of a change, before it is confirmed: a new (unsaved) wizard."""
        self.ensure_one()
        self._check_plan_offered(plan)
        return self.env["saas.subscription.change"].sudo().new({
            "subscription_id": self.id, "plan_id": plan.id, "period": period})

    def _portal_change(self, plan, period, shown_amount):
        """Confirm a change the customer saw; returns the pro-rata invoice, if any.

        ``shown_amount`` is what the preview said is billed now: a different
        amount (the period moved on, the plan's price changed) is refused, so
        the customer never confirms a price they were not shown.
        """
        self.ensure_one()
        self._check_plan_offered(plan)
        wizard = self.env["saas.subscription.change"].sudo().create({
            "subscription_id": self.id, "plan_id": plan.id, "period": period})
        if float_compare(wizard.prorata_amount, shown_amount,
                         precision_rounding=self.currency_id.rounding):
            raise UserError(self.env._(
                "The amount changed since the page was shown: please review the change again."))
        invoices_before = self.sudo().invoice_ids
        wizard.action_confirm()
        return (self.sudo().invoice_ids - invoices_before)[:1]
