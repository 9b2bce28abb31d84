"""Subscription lifecycle crons: renewals, notices, expiry, payments, termination."""

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models

from .saas_subscription import (
    CRON_BATCH,
    ENDED_STATES,
    NOTICE_DAYS,
    RENEW_DAYS_BEFORE,
    RUNNING_STATES,
)


class SaasSubscription(models.Model):
    _inherit = "saas.subscription"

    # -- notifications ---------------------------------------------------------------
    def _notice_due(self, end, today):
        """The 7/3/1-day notice to send for ``end`` today, if not sent yet."""
        days_left = (end - today).days
        due = [days for days in NOTICE_DAYS if days_left <= days]
        if not due or days_left <= 0:
            return None
        key = "%s:%d" % (end, min(due))
        return None if self.notice_sent == key else key

    # -- crons -----------------------------------------------------------------------
    @api.model
    def _cron_renew(self):
        """01:00: convert ended trials and renew auto-renewing subscriptions, once."""
        today = fields.Date.context_today(self)
        due = self.sudo().search([
            ("auto_renew", "=", True), ("cancel_at_period_end", "=", False), "|",
            "&", ("state", "=", "trial"), ("trial_end", "<=", today),
            "&", ("state", "in", ("active", "expiring")),
            ("date_end", "<=", today + relativedelta(days=RENEW_DAYS_BEFORE)),
        ], order="date_end, id")
        return self._saas_cron_batches(due, lambda sub: sub._renew(today), CRON_BATCH)

    def _renew(self, today):
        """Bill every period starting within the renewal window (one, unless runs were
        missed). Running it again finds nothing to bill."""
        horizon = today + relativedelta(days=RENEW_DAYS_BEFORE)
        invoices = self.env["account.move"]
        if self.state == "trial":
            invoices |= self._start_period(self.trial_end)
        while self.date_end <= horizon:
            invoices |= self._start_period(self.date_end)
        if invoices:
            self._notify("saas_manager.mail_template_subscription_renewed")

    @api.model
    def _cron_expiry(self):
        """02:00: notices, expiry, payment follow-up, termination after the grace days."""
        today = fields.Date.context_today(self)
        subs = self.sudo().search([("state", "in", RUNNING_STATES + ENDED_STATES)],
                                  order="date_end, id")
        params = self._billing_params()
        return self._saas_cron_batches(subs, lambda sub: sub._check_expiry(today, params),
                                       CRON_BATCH)

    def _check_expiry(self, today, params):
        if self.state in ENDED_STATES:
            if (self.termination_date and self.termination_date <= today
                    and self._governs_instance()):
                self._terminate()
            return
        if self.state == "trial":
            self._check_trial(today)
            return
        if self.date_end <= today:
            self._end("cancelled" if self.cancel_at_period_end else "expired")
            return
        self._check_payment(today, params["payment_grace_days"])
        if self.state in ("active", "expiring") and not (
                self.auto_renew and not self.cancel_at_period_end):
            notice = self._notice_due(self.date_end, today)
            if (self.date_end - today).days <= RENEW_DAYS_BEFORE:
                self.state = "expiring"
            if notice:
                self.notice_sent = notice
                self._notify("saas_manager.mail_template_subscription_expiring")

    def _check_trial(self, today):
        if self.trial_end <= today:
            renews = self.auto_renew and not self.cancel_at_period_end
            # An auto-renewing trial is converted by the renewal cron (01:00); one it
            # could not convert (no invoice product, say) ends the next day, like a
            # paid period that was not renewed.
            if not renews or self.trial_end < today:
                self._end("cancelled" if self.cancel_at_period_end else "expired")
            return
        notice = self._notice_due(self.trial_end, today)
        if notice:
            self.notice_sent = notice
            self._notify("saas_manager.mail_template_trial_ending")

    def _check_payment(self, today, grace_days):
        """Unpaid = a posted invoice not settled ``grace_days`` after its due date.

        The customer is told once per invoice when it falls due; access is
        suspended when the grace days are over, and given back when paid.
        """
        late = self.unpaid_invoice_ids.filtered(lambda m: m._saas_is_overdue(today, 0))
        unnoticed = late.filtered(lambda m: not m.saas_overdue_notified)
        if unnoticed:
            unnoticed.saas_overdue_notified = True
            self._notify("saas_manager.mail_template_payment_overdue")
        overdue = late.filtered(lambda m: m._saas_is_overdue(today, grace_days))
        instance = self.instance_id
        reason = instance.suspension_reason
        if overdue and self.state != "suspended":
            self.state = "suspended"
            if instance.state == "active":
                instance._suspend("unpaid")
            elif reason in ("user_limit", "storage_limit"):
                # Non-payment now decides: a payment lifts it, the limits no longer do.
                # (An operator's manual suspension stays theirs to lift.)
                instance._suspend("unpaid")
        elif not overdue and self.state == "suspended" and reason == "unpaid":
            self._reactivate()
