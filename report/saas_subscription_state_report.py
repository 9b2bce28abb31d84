"""Subscriptions by state over time.

A SQL view over ``saas.subscription.log``: each change of state is two rows,
+1 for the state entered and -1 for the state left, so the sum up to a date
(the graph's ``cumulated``) is the number of subscriptions in each state on
that date: trials, active, suspended, terminated...
"""

from odoo import fields, models
from odoo.tools import SQL

from ..models.saas_subscription import SUBSCRIPTION_STATES


class SaasSubscriptionStateReport(models.Model):
    _name = "saas.subscription.state.report"
    _description = "SaaS Subscriptions by State"
    _auto = False
    _order = "date desc"
    _rec_name = "date"

    date = fields.Date(readonly=True)
    state = fields.Selection(SUBSCRIPTION_STATES, readonly=True)
    subscription_id = fields.Many2one("saas.subscription", readonly=True)
    plan_id = fields.Many2one("saas.plan", readonly=True)
    template_id = fields.Many2one("saas.template", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    count_change = fields.Integer(string="Subscriptions", readonly=True,
                                  help="+1 entering the state, -1 leaving it.")

    @property
    def _table_query(self):
        return SQL("""
            SELECT l.id * 2 AS id, l.date, l.state_to AS state, 1 AS count_change,
                   l.subscription_id, l.plan_id, l.template_id, l.company_id
              FROM saas_subscription_log l
             WHERE l.state_from IS DISTINCT FROM l.state_to AND l.state_to <> 'draft'
            UNION ALL
            SELECT l.id * 2 + 1, l.date, l.state_from, -1,
                   l.subscription_id, l.plan_id, l.template_id, l.company_id
              FROM saas_subscription_log l
             WHERE l.state_from IS DISTINCT FROM l.state_to AND l.state_from <> 'draft'
        """)
