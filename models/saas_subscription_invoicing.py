"""Subscription invoices: one Odoo invoice per period, pro-rata upgrades."""

from dateutil.relativedelta import relativedelta

from odoo import Command, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_round


class SaasSubscription(models.Model):
    _inherit = "saas.subscription"

    # -- invoicing -----------------------------------------------------------------
    def _invoice_period(self, start, end):
        """Issue (and post, unless disabled) the invoice of ``[start, end)``.

        Idempotent: a live invoice for that period start is returned as is,
        and a unique index refuses a second one.
        """
        existing = self.invoice_ids.filtered(lambda m: m.saas_invoice_kind == "period"
                                             and m.saas_period_start == start
                                             and m.state != "cancel")
        if existing:
            return existing
        last_day = end - relativedelta(days=1)
        label = self.env._("%(plan)s plan, %(period)s, %(start)s to %(end)s",
                           plan=self.plan_id.name, period=self._period_label(),
                           start=start, end=last_day)
        return self._create_invoice(self.price, label, "period", start, last_day)

    def _invoice_prorata(self, amount, label):
        today = fields.Date.context_today(self)
        return self._create_invoice(amount, label, "prorata", today,
                                    self.date_end - relativedelta(days=1))

    def _create_invoice(self, amount, label, kind, start, last_day):
        product = self.plan_id.product_id
        if not product:
            raise UserError(self.env._("The plan %(plan)s has no invoice product.",
                                       plan=self.plan_id.name))
        values = {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "currency_id": self.currency_id.id,
            "company_id": self.company_id.id,
            "invoice_origin": self.name,
            "saas_subscription_id": self.id,
            "saas_invoice_kind": kind,
            "saas_period_start": start,
            "saas_period_end": last_day,
            "invoice_line_ids": [Command.create({
                "product_id": product.id, "name": label, "quantity": 1,
                "price_unit": amount})],
        }
        terms = self.partner_id.with_company(self.company_id).property_payment_term_id
        if kind == "period" and not terms:
            # Renewals are invoiced 7 days early; without payment terms they fall due on
            # the first day of the period they pay for, not on the day they are issued.
            values["invoice_date_due"] = max(start, fields.Date.context_today(self))
        invoice = self.env["account.move"].with_company(self.company_id).create(values)
        if self._billing_params()["auto_post"]:
            invoice.action_post()
        self.message_post(body=self.env._("Invoice %(invoice)s issued: %(label)s.",
                                          invoice=invoice.name or invoice.display_name,
                                          label=label))
        return invoice

    def _period_label(self):
        return dict(self._fields["period"]._description_selection(self.env))[self.period]

    def _prorata_amount(self, new_price):
        """What an upgrade costs for the rest of the paid period (days left / days paid)."""
        today = fields.Date.context_today(self)
        total = (self.date_end - self.period_start).days
        left = max((self.date_end - today).days, 0)
        return float_round((new_price - self.price) * left / total if total else 0.0,
                           precision_rounding=self.currency_id.rounding)
