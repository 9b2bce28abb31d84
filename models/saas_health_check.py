"""One health check of one instance: the time series behind uptime and response times."""

from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL
from odoo.tools.sql import create_index

#: The longest window computed from the checks (``saas.instance.uptime_30d``).
LONGEST_WINDOW_DAYS = 30
#: Retention never goes below the longest window plus a day.
MIN_RETENTION_DAYS = LONGEST_WINDOW_DAYS + 1


class SaasHealthCheck(models.Model):
    """Written by the hourly health cron (as superuser), read by operators; pruned
    after ``saas.health_retention_days``.

    No create/write/uid columns (``_log_access``): ``checked_at`` is the one
    timestamp, and thousands of rows an hour stay small.  The composite index
    ``(instance_id, checked_at)`` serves the window queries and every lookup by
    instance (its leading column), so ``instance_id`` has no index of its own.
    """

    _name = "saas.health.check"
    _description = "SaaS Health Check"
    _order = "checked_at desc, id desc"
    _rec_name = "checked_at"
    _log_access = False
    #: Rows deleted per statement when pruning.
    _prune_chunk = 10000

    instance_id = fields.Many2one("saas.instance", required=True, ondelete="cascade",
                                  readonly=True)
    checked_at = fields.Datetime(required=True, index=True, readonly=True)
    up = fields.Boolean(readonly=True)
    response_ms = fields.Integer(string="Response Time (ms)", readonly=True,
                                 aggregator="avg",
                                 help="Until the answer's headers arrived; 0 without an "
                                      "answer.")
    error = fields.Char(readonly=True)

    def init(self):
        result = super().init()
        create_index(self.env.cr, "saas_health_check_instance_checked_at_idx",
                     self._table, ["instance_id", "checked_at"])
        return result

    @api.model
    def _retention_days(self):
        return max(MIN_RETENTION_DAYS,
                   self.env["saas.settings"]._get("saas.health_retention_days"))

    @api.autovacuum
    def _gc_old_checks(self):
        """Delete the checks older than the retention, ``_prune_chunk`` rows per
        statement (no single statement over a whole backlog); returns the count."""
        limit = fields.Datetime.now() - timedelta(days=self._retention_days())
        deleted = 0
        while True:
            self.env.cr.execute(SQL(
                "DELETE FROM saas_health_check WHERE id IN "
                "(SELECT id FROM saas_health_check WHERE checked_at < %s LIMIT %s)",
                limit, self._prune_chunk))
            deleted += self.env.cr.rowcount
            if self.env.cr.rowcount < self._prune_chunk:
                break
        if deleted:
            self.invalidate_model()
        return deleted
