"""Fixed-window hit counters for the public routes (one row per client key).

Counted in the database, not in memory: prefork workers share nothing else.
A hit is written through its own cursor so that it counts even when the
request that made it fails and rolls back.
"""

from odoo import api, fields, models


class SaasRateLimit(models.Model):
    _name = "saas.rate.limit"
    _description = "SaaS Public Route Rate Limit"
    _log_access = False

    key = fields.Char(required=True, readonly=True)
    window_start = fields.Datetime(required=True, readonly=True)
    hits = fields.Integer(required=True, readonly=True)

    _sql_constraints = [("key_uniq", "unique(key)", "One counter per key.")]

    @api.model
    def _hit(self, key, limit, window_seconds):
        """Count a hit for ``key``; False once more than ``limit`` hits fell in the window."""
        with self.env.registry.cursor() as cr:
            cr.execute("""
                INSERT INTO saas_rate_limit (key, window_start, hits)
                VALUES (%(key)s, now() AT TIME ZONE 'UTC', 1)
                ON CONFLICT (key) DO UPDATE SET
                    hits = CASE WHEN saas_rate_limit.window_start
                                     < (now() AT TIME ZONE 'UTC') - make_interval(secs => %(w)s)
                                THEN 1 ELSE saas_rate_limit.hits + 1 END,
                    window_start = CASE WHEN saas_rate_limit.window_start
                                     < (now() AT TIME ZONE 'UTC') - make_interval(secs => %(w)s)
                                THEN now() AT TIME ZONE 'UTC' ELSE saas_rate_limit.window_start END
                RETURNING hits""", {"key": key[:200], "w": window_seconds})
            return cr.fetchone()[0] <= limit

    @api.autovacuum
    def _gc_windows(self):
        self.env.cr.execute("DELETE FROM saas_rate_limit "
                            "WHERE window_start < (now() AT TIME ZONE 'UTC') - interval '1 day'")
