"""MRR movements: every change of a subscription's monthly value, classified.

A SQL view over ``saas.subscription.log`` (rules there), classified in the
company's currency, as it is summed: new (from nothing),
expansion (up), contraction (down, still paying) and churn (to nothing), in
the company's currency.  Summed by month it gives each month's movements;
cumulated (the graph's ``cumulated``) it gives the MRR itself.
"""

from odoo import fields, models
from odoo.tools import SQL

MOVEMENTS = [("new", "New"), ("expansion", "Expansion"), ("contraction", "Contraction"),
             ("churn", "Churn")]


class SaasMrrReport(models.Model):
    _name = "saas.mrr.report"
    _description = "SaaS MRR Movements"
    _auto = False
    _order = "date desc"
    _rec_name = "date"

    date = fields.Date(readonly=True)
    subscription_id = fields.Many2one("saas.subscription", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    plan_id = fields.Many2one("saas.plan", readonly=True)
    template_id = fields.Many2one("saas.template", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    movement = fields.Selection(MOVEMENTS, readonly=True)
    mrr_change = fields.Monetary(string="MRR Change", readonly=True)
    new_mrr = fields.Monetary(string="New MRR", readonly=True)
    expansion_mrr = fields.Monetary(string="Expansion MRR", readonly=True)
    contraction_mrr = fields.Monetary(string="Contraction MRR", readonly=True,
                                      help="Lost to downgrades (a positive amount).")
    churned_mrr = fields.Monetary(string="Churned MRR", readonly=True,
                                  help="Lost with the subscriptions that ended (positive).")

    @property
    def _table_query(self):
        return SQL("""
            SELECT l.id, l.date, l.subscription_id, l.partner_id, l.plan_id, l.template_id,
                   l.company_id, c.currency_id, m.movement,
                   l.mrr_change_company AS mrr_change,
                   CASE WHEN m.movement = 'new' THEN l.mrr_change_company ELSE 0 END AS new_mrr,
                   CASE WHEN m.movement = 'expansion' THEN l.mrr_change_company ELSE 0 END
                       AS expansion_mrr,
                   CASE WHEN m.movement = 'contraction' THEN -l.mrr_change_company ELSE 0 END
                       AS contraction_mrr,
                   CASE WHEN m.movement = 'churn' THEN -l.mrr_change_company ELSE 0 END
                       AS churned_mrr
              FROM saas_subscription_log l
              JOIN res_company c ON c.id = l.company_id
             CROSS JOIN LATERAL (SELECT CASE
                   WHEN l.mrr_before_company = 0 THEN 'new'
                   WHEN l.mrr_after_company = 0 THEN 'churn'
                   WHEN l.mrr_change_company > 0 THEN 'expansion'
                   ELSE 'contraction' END AS movement) m
             WHERE l.mrr_change_company <> 0
        """)
