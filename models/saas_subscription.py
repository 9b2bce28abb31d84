
from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, format_amount

from .account_move import SETTLED_PAYMENT_STATES

SUBSCRIPTION_STATES = [
    ("draft", "Draft"),
    ("trial", "Trial"),
    ("active", "Active"),
    ("expiring", "Expiring Soon"),
    ("suspended", "Suspended"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
    ("terminated", "Terminated"),
]
#: The instance is (or may become) served: at most one such subscription per instance.
RUNNING_STATES = ("trial", "active", "expiring", "suspended")
#: The subscription is over; the instance is suspended, then terminated after the grace days.
ENDED_STATES = ("expired", "cancelled")
PERIOD_LENGTH = {"monthly": relativedelta(months=1), "yearly": relativedelta(years=1)}
#: Auto-renewal issues the next period's invoice this many days before the end.
RENEW_DAYS_BEFORE = 7
#: Days before the end (or the trial's end) at which the customer is told.
NOTICE_DAYS = (7, 3, 1)
#: Records handled between two commits (and two progress reports) of a cron.
CRON_BATCH = 50


class SaasSubscription(models.Model):
    """What a customer pays for an instance, period after period.

    The lifecycle (see CONFIGURATION.md, "Subscriptions") is driven by the
    renewal cron (01:00) and the expiry cron (02:00); every transition is
    also a button for the operator.  Dates: a period covers
    ``[period_start, date_end)``: ``date_end`` is the first day *not* paid for,
    which is also the renewal date.
    """

    _name = "saas.subscription"
    _description = "SaaS Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin", "saas.protected.mixin",
                "saas.server.mixin", "saas.lifecycle.mixin"]
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
    period_start = fields.Date(string="Current Period Start", readonly=True, copy=False,
                               saas_protected=True)
    billing_anchor = fields.Date(
        readonly=True, copy=False,
        help="Start of the first paid period: every period ends on the same day of the month "
             "(or of the year) as this date, so the billing day never drifts.", saas_protected=True)
    date_end = fields.Date(string="Renewal / End", readonly=True, copy=False, tracking=True,
                           help="First day not paid for: the renewal date, or the end.",
                           saas_protected=True)
    trial_end = fields.Date(readonly=True, copy=False, tracking=True, saas_protected=True)
    skip_trial = fields.Boolean(help="Start with a paid period even if the plan has a trial.")
    auto_renew = fields.Boolean(default=True, tracking=True)
    cancel_at_period_end = fields.Boolean(
        tracking=True, copy=False,
        help="Cancelled by the customer: not renewed, ends at the end of the paid period.")
    grace_days = fields.Integer(
        default=7, tracking=True,
        help="Days between the end (expiry or cancellation) and the termination, which "
             "backs up and drops the database.")
    ended_on = fields.Date(readonly=True, copy=False, saas_protected=True)
    termination_date = fields.Date(compute="_compute_termination_date")
    next_plan_id = fields.Many2one("saas.plan", string="Plan From Next Period", tracking=True,
                                   copy=False, ondelete="restrict")
    next_period = fields.Selection([("monthly", "Monthly"), ("yearly", "Yearly")],
                                   string="Period From Next Period", tracking=True, copy=False)
    notice_sent = fields.Char(readonly=True, copy=False,
                              help="Last end-of-period notice sent: '<date>:<days>'.",
                              groups="saas_manager.group_saas_user", saas_protected=True)
    state = fields.Selection(SUBSCRIPTION_STATES, default="draft", required=True,
                             readonly=True, tracking=True, copy=False, index=True,
                             saas_protected=True)
    currency_id = fields.Many2one(related="plan_id.currency_id", store=True)
    price = fields.Monetary(compute="_compute_price", store=True, readonly=False,
                            precompute=True, currency_field="currency_id", tracking=True,
                            help="Price of one period, before taxes.")
    invoice_ids = fields.One2many("account.move", "saas_subscription_id", string="Invoices")
    invoice_count = fields.Integer(compute="_compute_invoice_figures", compute_sudo=True)
    last_invoice_id = fields.Many2one("account.move", compute="_compute_invoice_figures",
                                      compute_sudo=True)
    unpaid_invoice_ids = fields.Many2many("account.move", compute="_compute_invoice_figures",
                                          string="Unpaid Invoices", compute_sudo=True)
    amount_due = fields.Monetary(compute="_compute_invoice_figures", compute_sudo=True,
                                 currency_field="currency_id")
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 compute="_compute_company_id", store=True, readonly=False,
                                 precompute=True)

    _sql_constraints = [
        ("dates_order", "CHECK(date_end IS NULL OR date_end >= date_start)",
         "The end of a subscription cannot be before its start."),
        ("grace_positive", "CHECK(grace_days >= 0)", "Grace days cannot be negative."),
        ("price_positive", "CHECK(price >= 0)", "The price cannot be negative."),
    ]

    def init(self):
        """At most one running subscription per instance, race-proof."""
        result = super().init()
        self.env.cr.execute(SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS saas_subscription_running_uniq "
            "ON saas_subscription (instance_id) WHERE state IN %s", RUNNING_STATES))
        return result

    # -- computes --------------------------------------------------------------
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

    @api.depends("plan_id", "period")
    def _compute_price(self):
        for sub in self:
            sub.price = sub.plan_id.price_for(sub.period) if sub.plan_id else 0.0

    @api.depends("ended_on", "grace_days")
    def _compute_termination_date(self):
        for sub in self:
            sub.termination_date = sub.ended_on and fields.Date.add(
                sub.ended_on, days=sub.grace_days)

    @api.depends("invoice_ids.state", "invoice_ids.payment_state", "invoice_ids.amount_residual")
    def _compute_invoice_figures(self):
        for sub in self:
            invoices = sub.invoice_ids.filtered(lambda m: m.state != "cancel")
            unpaid = invoices.filtered(lambda m: m.state == "posted"
                                       and m.payment_state not in SETTLED_PAYMENT_STATES)
            sub.invoice_count = len(sub.invoice_ids)
            sub.last_invoice_id = invoices.sorted(lambda m: (m.saas_period_start or
                                                              m.invoice_date or
                                                              fields.Date.today(), m.id))[-1:]
            sub.unpaid_invoice_ids = unpaid
            sub.amount_due = sum(unpaid.mapped("amount_residual"))

    # -- ORM ---------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("name", "/") == "/":
                vals["name"] = self.env["ir.sequence"].next_by_code("saas.subscription") or "/"
        return super().create(vals_list)

    def write(self, vals):
        frozen = {"instance_id", "partner_id", "date_start", "skip_trial", "plan_id", "period",
                  "price"}.intersection(vals)
        if frozen and not self.env.su and self.filtered(lambda s: s.state != "draft"):
            raise UserError(self.env._(
                "The instance, customer, start, plan and price of a subscription are fixed "
                "once it runs: use Change Plan."))
        return super().write(vals)

    # -- settings ------------------------------------------------------------------
    @api.model
    def _billing_params(self):
        get = self.env["saas.settings"]._get
        return {"auto_post": get("saas.invoice_auto_post"),
                "payment_grace_days": get("saas.payment_grace_days")}

    # -- buttons -------------------------------------------------------------------
    def action_activate(self):
        """Start the subscription: a trial if the plan has one, else a paid period."""
        self._check_states(("draft",), self.env._("Only draft subscriptions can be activated."))
        for sub in self.sudo():
            sub._check_no_other_running()
            if sub._trial_allowed():
                sub._start_trial()
            else:
                sub._start_period(sub.date_start)
            sub._attach_to_instance()
        return True

    def action_renew(self):
        """Manual renewal of an expired or cancelled subscription: a new period from today.

        Running subscriptions renew themselves; a suspended one still has its
        paid period (reactivate it, or let it expire).
        """
        self._check_states(ENDED_STATES, self.env._(
            "Only expired or cancelled subscriptions are renewed by hand; running ones renew "
            "automatically."))
        today = fields.Date.context_today(self)
        for sub in self.sudo():
            sub._check_no_other_running()
            sub.billing_anchor = today
            sub._start_period(today)
            sub.write({"ended_on": False, "cancel_at_period_end": False})
            sub._attach_to_instance()
            sub._notify("saas_manager.mail_template_subscription_renewed")
        return True

    def action_suspend(self):
        """Block access now (the period keeps running); lifted by Reactivate."""
        self._check_states(("trial", "active", "expiring"),
                           self.env._("Only running subscriptions can be suspended."))
        for sub in self.sudo():
            sub.state = "suspended"
            if sub.instance_id.state == "active":
                sub.instance_id._suspend("manual")
        return True

    def action_reactivate(self):
        """Lift a suspension, when the period is still running."""
        self._check_states(("suspended",), self.env._("Only suspended subscriptions can be "
                                                      "reactivated."))
        today = fields.Date.context_today(self)
        for sub in self.sudo():
            if sub.date_end and sub.date_end <= today:
                raise UserError(self.env._(
                    "%(name)s's period ended on %(date)s: renew it instead.",
                    name=sub.name, date=sub.date_end))
            sub._reactivate()
        return True

    def action_cancel(self):
        """Cancel now: access stops, and termination follows after the grace days."""
        self._check_states((*RUNNING_STATES, "draft"),
                           self.env._("This subscription is already over."))
        for sub in self.sudo():
            if sub.state == "draft":
                sub.state = "cancelled"
                continue
            sub._end("cancelled")
        return True

    def action_cancel_at_period_end(self):
        """The customer leaves: no renewal, access until the end of the paid period."""
        self._check_states(("trial", "active", "expiring"),
                           self.env._("Only running subscriptions can be cancelled."))
        self.sudo().write({"cancel_at_period_end": True, "auto_renew": False})
        return True

    def action_undo_cancel(self):
        self._check_states(("trial", "active", "expiring"),
                           self.env._("This subscription is already over."))
        self.sudo().write({"cancel_at_period_end": False, "auto_renew": True})
        self.sudo().filtered(lambda s: s.state == "expiring").state = "active"
        return True

    def action_change_plan(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_subscription_change")
        action["context"] = {"default_subscription_id": self.id}
        return action

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type")
        action["domain"] = [("saas_subscription_id", "=", self.id)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action

    # -- transitions -------------------------------------------------------------
    def _check_no_other_running(self):
        other = self.instance_id.subscription_ids.filtered(
            lambda s: s != self and s.state in RUNNING_STATES)
        if other:
            raise UserError(self.env._("%(instance)s already has a running subscription, "
                                       "%(sub)s.", instance=self.instance_id.name,
                                       sub=other[0].name))
        if self.instance_id.state == "terminated":
            raise UserError(self.env._("%(instance)s is terminated.",
                                       instance=self.instance_id.name))

    def _trial_allowed(self):
        """One trial per customer: a plan's trial is not renewed by a new subscription."""
        if self.skip_trial or not self.plan_id.trial_days:
            return False
        return not self.search_count([
            ("id", "!=", self.id), ("trial_end", "!=", False),
            ("commercial_partner_id", "=", self.commercial_partner_id.id)])

    def _start_trial(self):
        end = fields.Date.add(self.date_start, days=self.plan_id.trial_days)
        self.write({"state": "trial", "period_start": self.date_start, "trial_end": end,
                    "date_end": end, "notice_sent": False})
        self.message_post(body=self.env._("Trial started, until %(date)s.", date=end))

    def _start_period(self, start):
        """Apply any scheduled plan change, bill ``[start, start + period)``, mark active."""
        if self.next_plan_id or self.next_period:
            self._apply_next_plan(start)
        end = self._period_end(start)
        invoice = self._invoice_period(start, end)
        self.write({"state": "active", "period_start": start, "date_end": end,
                    "notice_sent": False, "billing_anchor": self.billing_anchor or start})
        return invoice

    def _period_end(self, start):
        """The end of the period starting at ``start``, counted from the billing anchor
        (31 Jan, 28 Feb, 31 Mar..., never 31 Jan, 28 Feb, 28 Mar...)."""
        anchor = self.billing_anchor or start
        step = PERIOD_LENGTH[self.period]
        count = 1
        while anchor + step * count <= start:
            count += 1
        return anchor + step * count

    def _apply_next_plan(self, start):
        values = {"plan_id": (self.next_plan_id or self.plan_id).id,
                  "period": self.next_period or self.period,
                  "next_plan_id": False, "next_period": False}
        if values["period"] != self.period:
            values["billing_anchor"] = start  # a new rhythm starts with this period
        self.write(values)
        if self.instance_id.subscription_id == self:
            self.instance_id._saas_follow_plan(self.plan_id)
        self.message_post(body=self.env._("Plan changed to %(plan)s (%(period)s).",
                                          plan=self.plan_id.name, period=self.period))

    def _attach_to_instance(self):
        """This subscription becomes the instance's current one; access follows it."""
        self.instance_id._saas_attach_subscription(self)

    def _reactivate(self):
        running_trial = self.trial_end and not self.invoice_ids and (
            self.trial_end > fields.Date.context_today(self))
        self.state = "trial" if running_trial else "active"
        if self.instance_id.state == "suspended":
            self.instance_id._reactivate()

    def _end(self, state):
        """Expired or cancelled: the instance is suspended now, terminated after the grace."""
        self.write({"state": state, "ended_on": fields.Date.context_today(self)})
        self.message_post(body=self.env._(
            "Subscription %(state)s; the instance will be terminated on %(date)s unless it "
            "is renewed.", state=dict(SUBSCRIPTION_STATES)[state], date=self.termination_date))
        if self.instance_id.state == "active":
            self.instance_id._suspend(state)

    def _governs_instance(self):
        """An ended subscription decides the instance's fate only while no newer one
        took over (the instance's current subscription, or a running one)."""
        instance = self.instance_id
        newer = instance.subscription_ids.filtered(
            lambda s: s != self and s.state in RUNNING_STATES)
        return not newer and instance.subscription_id in (self, self.browse())

    def _terminate(self):
        """Terminate the instance (an operation): the subscription is terminated when the
        instance says it is gone (:meth:`_saas_instance_terminated`); until then the
        expiry cron asks again each day, so a failed termination is tried again."""
        if self.instance_id.state in ("terminated", "draft", "failed"):
            self._saas_instance_terminated()
        else:
            self.instance_id._terminate()

    def _saas_instance_terminated(self):
        """The instance's API tells its running subscriptions it is gone: they end and
        renew no more.  Their unpaid invoices stay posted and due (CONFIGURATION.md,
        Subscriptions): a posted invoice is a receivable, and writing one off is the
        operator's decision, not a side effect of the termination."""
        for sub in self.filtered(lambda s: s.state not in ("draft", "terminated")):
            sub.write({"state": "terminated", "auto_renew": False})
            if sub.unpaid_invoice_ids:
                sub._note_due_after_termination()

    def _note_due_after_termination(self):
        """Tell the operator, in the chatter, what the customer still owes."""
        invoices = self.unpaid_invoice_ids
        self.message_post(body=self.env._(
            "Terminated with %(amount)s still due on %(invoices)s. These invoices stay open: "
            "collect them, or issue a credit note for what should not be paid.",
            amount=format_amount(self.env, self.amount_due, self.currency_id),
            invoices=", ".join(invoices.mapped("name"))))
