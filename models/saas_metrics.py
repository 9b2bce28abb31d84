"""saas.metrics: the figures ``/saas/metrics`` serves (controllers/metrics.py).

Each metric family is one or two aggregate queries (``_read_group`` or
SQL), so a scrape costs the same handful of queries with ten instances or
ten thousand.  Read as superuser: the endpoint has no user, its bearer token is
the access check.  What each metric means is in CONFIGURATION.md, "Metrics
(Prometheus)".
"""

from odoo import api, models
from odoo.tools import SQL

from ..engine import metrics
from .saas_instance import INSTANCE_STATES
from .saas_operation import OPERATION_KINDS, OPERATION_STATES

#: Upper bounds (seconds) of the provisioning-time buckets: a standby's rename takes
#: well under a second, a clone about a second, a busy server up to minutes.
PROVISIONING_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120)


class SaasMetrics(models.AbstractModel):
    _name = "saas.metrics"
    _description = "SaaS Metrics (Prometheus)"

    @api.model
    def _saas_collect(self):
        """Every family of the endpoint, as ``engine.metrics`` families."""
        collector = self.sudo()
        return [collector._saas_instance_states(), collector._saas_instance_up(),
                collector._saas_provisioning_seconds(), collector._saas_operation_counts(),
                collector._saas_backup_ages(), collector._saas_mrr()]

    def _saas_instance_states(self):
        """Every state, 0 included: a series that vanishes cannot be told from a scrape
        that failed."""
        counts = dict(self.env["saas.instance"]._read_group([], ["state"], ["__count"]))
        return metrics.gauge("saas_instances", "Instances by state.", [
            ({"state": state}, counts.get(state, 0)) for state, _label in INSTANCE_STATES])

    def _saas_instance_up(self):
        """Active instances whose last health check said up (1) or down (0); those not
        checked yet are left out rather than counted as down."""
        rows = self.env["saas.instance"]._read_group(
            [("state", "=", "active"), ("health_status", "in", ("up", "down")),
             ("host", "!=", False)], ["host", "health_status"])
        return metrics.gauge(
            "saas_instance_up", "1 if the last health check of the active instance passed, "
            "0 if it failed.", [({"instance": host}, int(status == "up")) for host, status in rows])

    def _saas_provisioning_seconds(self):
        """Provisionings done, counted per bucket by PostgreSQL: the bucket of a duration
        is the number of bounds below it (``le`` is inclusive)."""
        self.env["saas.operation"].flush_model(["kind", "state", "seconds"])
        bounds = [float(bound) for bound in PROVISIONING_BUCKETS]
        self.env.cr.execute(SQL(
            """SELECT (SELECT count(*) FROM unnest(%s::float8[]) AS bound
                        WHERE bound < op.seconds), count(*), sum(op.seconds)
                 FROM saas_operation op
                WHERE op.kind = 'provision' AND op.state = 'done' AND op.seconds IS NOT NULL
                GROUP BY 1""", bounds))
        counts, total = [0] * (len(bounds) + 1), 0
        for bucket, count, seconds in self.env.cr.fetchall():
            counts[bucket] = count
            total += seconds
        return metrics.histogram(
            "saas_provisioning_seconds", "Duration of the provisionings done (their steps).",
            bounds, counts, total)

    def _saas_operation_counts(self):
        """Every kind and state, 0 included (see :meth:`_saas_instance_states`)."""
        counts = {(kind, state): count for kind, state, count in self.env[
            "saas.operation"]._read_group([], ["kind", "state"], ["__count"])}
        return metrics.gauge("saas_operations", "Operations by kind and state.", [
            ({"kind": kind, "state": state}, counts.get((kind, state), 0))
            for kind, _kind_label in OPERATION_KINDS for state, _state_label in OPERATION_STATES])

    def _saas_backup_ages(self):
        """Seconds since the start (``stamp``, the database server's clock) of each active
        instance's newest good backup (``saas.backup._saas_newest_good``); ``+Inf`` for an
        instance without one, so that an age alert fires for it too."""
        instances = self.env["saas.instance"].sudo().search_fetch(
            [("state", "=", "active"), ("host", "!=", False)], ["host"], order="host")
        newest = self.env["saas.backup"]._saas_newest_good(instances)
        self.env.cr.execute("SELECT now() AT TIME ZONE 'UTC'")
        now = self.env.cr.fetchone()[0]
        return metrics.gauge(
            "saas_backup_newest_verified_age_seconds",
            "Age of the newest verified backup of the active instance (+Inf: none).",
            [({"instance": instance.host},
              (now - newest[instance]).total_seconds() if instance in newest else float("inf"))
             for instance in instances])

    def _saas_mrr(self):
        """Monthly recurring revenue per company currency: the sum of the subscriptions'
        last values in the MRR log, the figure the dashboard and the reports show (rules
        in saas_subscription_log.py)."""
        mrr = {}
        by_company = self.env["saas.subscription.log"]._saas_mrr_by_company()
        for company, amount in by_company.items():
            mrr[company.currency_id] = mrr.get(company.currency_id, 0.0) + amount
        return metrics.gauge(
            "saas_mrr", "Monthly recurring revenue of the billed subscriptions, in the "
            "company's currency.", [({"currency": currency.name}, currency.round(amount))
                                    for currency, amount in sorted(
                                        mrr.items(), key=lambda item: item[0].name)])
