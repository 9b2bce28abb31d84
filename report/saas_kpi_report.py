"""SaaS figures per month and company: MRR, ARR, movements, customers, churn,
trial conversion, ARPU.  Every amount, and every test on an amount, is in the
company's currency (the log's ``*_company`` columns), so new + expansion -
contraction - churn is the net change, whatever the rates did.

A SQL view over ``saas.subscription.log`` (rules there), one row per company
and month from its first logged month to the current one, months without
any change included (their MRR is the previous month's).  Definitions, also
in CONFIGURATION.md ("Analytics"):

* MRR: at the end of the month (the current month: today); ARR = 12 x MRR.
* customers: paying subscriptions at the end of the month.
* logo churn rate: subscriptions that stopped paying during the month /
  paying subscriptions at its start.
* revenue churn rate (gross): churned + contraction MRR / MRR at the start.
* trial conversion: trials that became paying / trials that ended (paying,
  expired, cancelled or terminated) during the month.
* ARPU: MRR / customers at the end of the month.
"""

from odoo import fields, models
from odoo.tools import SQL

from ..models.saas_subscription_analytics import PAYING_STATES


class SaasKpiReport(models.Model):
    _name = "saas.kpi.report"
    _description = "SaaS Monthly Figures"
    _auto = False
    _order = "date desc, company_id"

    date = fields.Date(string="Month Start", readonly=True)
    name = fields.Char(string="Month", readonly=True, help="The month, as YYYY-MM.")
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    mrr = fields.Monetary(string="MRR", readonly=True, aggregator="max")
    arr = fields.Monetary(string="ARR", readonly=True, aggregator="max")
    mrr_start = fields.Monetary(string="MRR at Start", readonly=True, aggregator="max")
    new_mrr = fields.Monetary(string="New MRR", readonly=True)
    expansion_mrr = fields.Monetary(string="Expansion MRR", readonly=True)
    contraction_mrr = fields.Monetary(string="Contraction MRR", readonly=True)
    churned_mrr = fields.Monetary(string="Churned MRR", readonly=True)
    net_new_mrr = fields.Monetary(string="Net New MRR", readonly=True)
    customers = fields.Integer(string="Paying Subscriptions", readonly=True, aggregator="max")
    customers_start = fields.Integer(string="Paying at Start", readonly=True, aggregator="max")
    churned_customers = fields.Integer(string="Churned Subscriptions", readonly=True)
    trials_started = fields.Integer(readonly=True)
    trials_converted = fields.Integer(readonly=True)
    trials_lost = fields.Integer(readonly=True)
    trial_conversion_rate = fields.Float(string="Trial Conversion (%)", digits=(5, 2),
                                         readonly=True, aggregator="avg")
    logo_churn_rate = fields.Float(string="Logo Churn (%)", digits=(5, 2), readonly=True,
                                   aggregator="avg")
    revenue_churn_rate = fields.Float(string="Revenue Churn (%)", digits=(5, 2), readonly=True,
                                      aggregator="avg")
    arpu = fields.Monetary(string="ARPU", readonly=True, aggregator="avg")

    @property
    def _table_query(self):
        return SQL("""
            WITH log AS (
                SELECT company_id, date_trunc('month', date)::date AS month,
                       mrr_before_company AS mrr_before, mrr_after_company AS mrr_after,
                       mrr_change_company AS change, state_from, state_to
                  FROM saas_subscription_log
            ), months AS (
                SELECT company_id, generate_series(
                           min(month), date_trunc('month', now() AT TIME ZONE 'UTC'),
                           interval '1 month')::date AS month
                  FROM log GROUP BY company_id
            ), monthly AS (
                SELECT m.company_id, m.month,
                       coalesce(sum(l.change), 0) AS net,
                       coalesce(sum(l.change) FILTER (
                           WHERE l.mrr_before = 0 AND l.mrr_after > 0), 0) AS new_mrr,
                       coalesce(sum(l.change) FILTER (
                           WHERE l.mrr_before > 0 AND l.mrr_after > 0 AND l.change > 0), 0)
                           AS expansion_mrr,
                       coalesce(-sum(l.change) FILTER (
                           WHERE l.mrr_before > 0 AND l.mrr_after > 0 AND l.change < 0), 0)
                           AS contraction_mrr,
                       coalesce(-sum(l.change) FILTER (
                           WHERE l.mrr_before > 0 AND l.mrr_after = 0), 0) AS churned_mrr,
                       coalesce(sum((l.mrr_after > 0)::int - (l.mrr_before > 0)::int), 0)
                           AS customer_change,
                       count(l.month) FILTER (WHERE l.mrr_before > 0 AND l.mrr_after = 0)
                           AS churned_customers,
                       count(l.month) FILTER (WHERE l.state_to = 'trial'
                           AND l.state_from IS DISTINCT FROM 'trial') AS trials_started,
                       count(l.month) FILTER (WHERE l.state_from = 'trial'
                           AND l.state_to IN %(paying)s) AS trials_converted,
                       count(l.month) FILTER (WHERE l.state_from = 'trial'
                           AND l.state_to IN ('expired', 'cancelled', 'terminated'))
                           AS trials_lost
                  FROM months m
                  LEFT JOIN log l ON l.company_id = m.company_id AND l.month = m.month
                 GROUP BY m.company_id, m.month
            ), running AS (
                SELECT *, sum(net) OVER w AS mrr, sum(customer_change) OVER w AS customers
                  FROM monthly
                WINDOW w AS (PARTITION BY company_id ORDER BY month)
            )
            SELECT row_number() OVER (ORDER BY r.company_id, r.month) AS id,
                   r.month AS date, to_char(r.month, 'YYYY-MM') AS name, r.company_id,
                   c.currency_id,
                   r.mrr, 12 * r.mrr AS arr, r.mrr - r.net AS mrr_start,
                   r.new_mrr, r.expansion_mrr, r.contraction_mrr, r.churned_mrr,
                   r.net AS net_new_mrr, r.customers,
                   r.customers - r.customer_change AS customers_start, r.churned_customers,
                   r.trials_started, r.trials_converted, r.trials_lost,
                   100.0 * r.trials_converted
                       / NULLIF(r.trials_converted + r.trials_lost, 0) AS trial_conversion_rate,
                   100.0 * r.churned_customers
                       / NULLIF(r.customers - r.customer_change, 0) AS logo_churn_rate,
                   100.0 * (r.churned_mrr + r.contraction_mrr)
                       / NULLIF(r.mrr - r.net, 0) AS revenue_churn_rate,
                   r.mrr / NULLIF(r.customers, 0) AS arpu
              FROM running r
              JOIN res_company c ON c.id = r.company_id
        """, paying=PAYING_STATES)
