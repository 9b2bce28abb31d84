"""Health: HTTP and database checks of every active instance, alerts on outages.

Every check of every run is a ``saas.health.check`` record; the instance keeps
the last one's outcome in quick fields (status, time, response, consecutive
failures, error) and computes uptime and response time over windows of the
stored checks.
"""

from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL, split_every

from ..engine import health
from .saas_settings import conf, conf_flag

#: Uptime windows: field -> days.
UPTIME_WINDOWS = {"uptime_24h": 1, "uptime_7d": 7, "uptime_30d": 30}
#: The window of ``response_p95_ms``: a week of hourly checks (168) makes a 95th
#: percentile meaningful; over 24 checks it would be about the worst but one.
P95_WINDOW_DAYS = 7
#: Checks written per ``create`` by the cron.
CHECK_BATCH = 1000


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    health_status = fields.Selection(
        [("unknown", "Unknown"), ("up", "Up"), ("down", "Down")],
        default="unknown", readonly=True, copy=False, saas_protected=True)
    health_checked_at = fields.Datetime(string="Last Health Check", readonly=True, copy=False,
                                        groups="saas_manager.group_saas_user", saas_protected=True)
    health_response_ms = fields.Integer(string="Response Time (ms)", readonly=True, copy=False,
                                        groups="saas_manager.group_saas_user", saas_protected=True)
    health_failures = fields.Integer(string="Consecutive Failures", readonly=True, copy=False,
                                     groups="saas_manager.group_saas_user", saas_protected=True)
    health_error = fields.Char(string="Last Health Error", readonly=True, copy=False,
                               groups="saas_manager.group_saas_user", saas_protected=True)
    # Computed from the checks, one query for the whole recordset (_compute_health_stats).
    # An ORM float cannot be empty: the uptime of a window without checks is 0 and
    # its check count, shown next to it, says there was nothing to measure.
    uptime_24h = fields.Float(string="Uptime 24 h (%)", digits=(5, 2),
                              compute="_compute_health_stats",
                              groups="saas_manager.group_saas_user")
    uptime_7d = fields.Float(string="Uptime 7 d (%)", digits=(5, 2),
                             compute="_compute_health_stats",
                             groups="saas_manager.group_saas_user")
    uptime_30d = fields.Float(string="Uptime 30 d (%)", digits=(5, 2),
                              compute="_compute_health_stats",
                              groups="saas_manager.group_saas_user")
    health_checks_24h = fields.Integer(string="Checks 24 h", compute="_compute_health_stats",
                                       groups="saas_manager.group_saas_user")
    health_checks_7d = fields.Integer(string="Checks 7 d", compute="_compute_health_stats",
                                      groups="saas_manager.group_saas_user")
    health_checks_30d = fields.Integer(string="Checks 30 d", compute="_compute_health_stats",
                                       groups="saas_manager.group_saas_user")
    response_p95_ms = fields.Integer(
        string="Response p95 7 d (ms)", compute="_compute_health_stats",
        groups="saas_manager.group_saas_user",
        help="95th percentile (interpolated) of the response times of the successful "
             "checks of the last 7 days; 0 when there were none.")
    health_check_count = fields.Integer(string="Health Checks", compute="_compute_health_stats",
                                        groups="saas_manager.group_saas_user")

    # -- health ----------------------------------------------------------------------
    @api.model
    def _cron_health(self):
        """Hourly: HTTP and database check of every active instance, concurrently."""
        instances = self.sudo().search([("state", "=", "active")], order="id")
        settings = self._health_settings()
        by_id, now = instances._check_health_now(settings)
        return self._saas_cron_batches(
            instances,
            lambda instance: instance._record_health(by_id[instance.id], now,
                                                     settings["alert_after"]), 200)

    def _check_health_now(self, settings):
        """Check the instances of ``self`` concurrently and write their check records:
        the hourly cron's work, and a new instance's first check.  Returns
        ``({id: Result}, now)``."""
        results = health.check_all(
            [instance._health_target(settings) for instance in self],
            pg_params=self._saas_pg_params(), connect_timeout=settings["connect_timeout"],
            read_timeout=settings["read_timeout"], concurrency=settings["concurrency"])
        by_id = {result.key: result for result in results}
        now = fields.Datetime.now()
        self._create_health_checks(by_id, now)
        return by_id, now

    @api.model
    def _health_settings(self):
        """Where and how hard to probe: odoo.conf (network side) plus one business
        parameter, the number of failures before an alert."""
        return {
            "public": conf_flag("saas_health_public_url"),
            "server_url": self._saas_odoo_url(),
            "path": conf("saas_health_path", "/web/login"),
            "connect_timeout": float(conf("saas_health_connect_timeout", 3)),
            "read_timeout": float(conf("saas_health_read_timeout", 5)),
            "concurrency": int(conf("saas_health_concurrency", 32)),
            "alert_after": max(1, self.env["saas.settings"]._get("saas.health_alert_failures")),
        }

    def _health_target(self, settings):
        """By default the Odoo server itself with the instance's Host header (checks
        that Odoo serves the database); the public URL when configured."""
        if settings["public"]:
            return health.Target(self.id, self.url + settings["path"], None,
                                 self.database_name)
        return health.Target(self.id, settings["server_url"] + settings["path"], self.host,
                             self.database_name)

    def _create_health_checks(self, results, now):
        """One ``saas.health.check`` per instance of ``self`` (``results``: id -> Result),
        ``CHECK_BATCH`` at a time: a few multi-row inserts for a whole run."""
        checks = self.env["saas.health.check"].sudo()
        for ids in split_every(CHECK_BATCH, self.ids):
            checks.create([{
                "instance_id": instance_id, "checked_at": now, "up": results[instance_id].up,
                "response_ms": results[instance_id].response_ms or 0,
                "error": health_error(results[instance_id]),
            } for instance_id in ids])
            checks.flush_model()
            checks.invalidate_model()  # thousands of rows nobody reads in this run

    def _record_health(self, result, now, alert_after):
        """The last check's outcome on the instance itself; an incident once
        ``alert_after`` checks in a row failed, closed by the first good check
        (the check record is written by :meth:`_create_health_checks`)."""
        was_down = self.health_failures >= alert_after
        failures = 0 if result.up else self.health_failures + 1
        self.sudo().write({
            "health_status": "up" if result.up else "down", "health_checked_at": now,
            "health_response_ms": result.response_ms or 0, "health_failures": failures,
            "health_error": health_error(result)})
        incidents = self.env["saas.incident"]
        if failures == alert_after:
            incidents._saas_open(
                "down", self, self.env._("%(name)s is down", name=self.name),
                self.env._("%(count)s failed checks in a row; last error: %(error)s",
                           count=failures, error=result.error or "-"))
        elif result.up and was_down:
            incidents._saas_resolve("down", self, self.env._(
                "Answering again in %(ms)s ms.", ms=result.response_ms or 0))

    # -- statistics over the stored checks ------------------------------------------
    @api.depends("health_checked_at")
    def _compute_health_stats(self):
        """Uptime per window, check counts and p95, in one aggregate query."""
        stats = self._health_stats(fields.Datetime.now())
        for instance in self:
            row = stats.get(instance.id, {})
            for name in UPTIME_WINDOWS:
                checks, up = row.get(name, (0, 0))
                instance[name] = 100.0 * up / checks if checks else False
                instance["health_checks_" + name[len("uptime_"):]] = checks
            instance.response_p95_ms = round(row["p95"]) if row.get("p95") is not None else 0
            instance.health_check_count = row.get("total", 0)

    def _health_stats(self, now):
        """``{instance id: {"uptime_24h": (checks, up), ..., "p95": ms|None, "total": n}}``
        for the instances of ``self`` that have checks (all stored checks for ``total``,
        the windows ending at ``now``)."""
        ids = [instance_id for instance_id in self.ids if instance_id]
        if not ids:
            return {}
        since = {name: now - timedelta(days=days) for name, days in UPTIME_WINDOWS.items()}
        windows = SQL(", ").join(
            SQL("count(*) FILTER (WHERE checked_at >= %s), "
                "count(*) FILTER (WHERE checked_at >= %s AND up)", since[name], since[name])
            for name in UPTIME_WINDOWS)
        self.env["saas.health.check"].flush_model()
        self.env.cr.execute(SQL(
            "SELECT instance_id, count(*), %s, "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY response_ms) "
            "FILTER (WHERE checked_at >= %s AND up) "
            "FROM saas_health_check WHERE instance_id = ANY(%s) AND checked_at <= %s "
            "GROUP BY instance_id",
            windows, now - timedelta(days=P95_WINDOW_DAYS), ids, now))
        stats = {}
        for instance_id, total, *counts, p95 in self.env.cr.fetchall():
            row = {"total": total, "p95": p95}
            for index, name in enumerate(UPTIME_WINDOWS):
                row[name] = (counts[2 * index], counts[2 * index + 1])
            stats[instance_id] = row
        return stats

    def action_view_health_checks(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_health_check")
        action["domain"] = [("instance_id", "=", self.id)]
        action["context"] = {}
        # The response-time graph first: the instance's trend at a glance.
        action["views"] = sorted(action["views"], key=lambda view: view[1] != "graph")
        return action


def health_error(result):
    """What is kept of a check's error: its first 200 characters, or nothing."""
    return (result.error or "")[:200] or False
