"""18.0.1.5.0: an instance's URL is no longer stored (its scheme and port come from
odoo.conf), so the old column goes.  The MRR log starts: subscriptions older than it get
one row, dated their start, with their state and value of today; the reports then show
today's MRR and customers, while movements before the upgrade are not known
(CONFIGURATION.md, "Analytics")."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    cr.execute("ALTER TABLE saas_instance DROP COLUMN IF EXISTS url")
    env = api.Environment(cr, SUPERUSER_ID, {})
    subs = env["saas.subscription"].search([("state", "!=", "draft")])
    for sub in subs.with_context(active_test=False):
        day = sub.billing_anchor or sub.date_start
        sub.with_context(saas_log_date=day)._log_changes({sub.id: ("draft", 0.0)})
