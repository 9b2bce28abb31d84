"""Health: HTTP and database checks of every active instance, alerts on outages."""

from odoo import api, fields, models

from ..engine import health
from .saas_settings import conf, conf_flag

#: Health checks remembered per instance (newest last), one character each.
HEALTH_HISTORY = 48
HEALTH_UP, HEALTH_DOWN = "+", "-"


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
    health_history = fields.Char(readonly=True, copy=False,
                                 help="Last checks, oldest first: + up, - down.",
                                 groups="saas_manager.group_saas_user", saas_protected=True)
    health_error = fields.Char(string="Last Health Error", readonly=True, copy=False,
                               groups="saas_manager.group_saas_user", saas_protected=True)

    # -- health ----------------------------------------------------------------------
    @api.model
    def _cron_health(self):
        """Hourly: HTTP and database check of every active instance, concurrently."""
        instances = self.sudo().search([("state", "=", "active")], order="id")
        settings = self._health_settings()
        results = health.check_all(
            [instance._health_target(settings) for instance in instances],
            pg_params=self._saas_pg_params(), connect_timeout=settings["connect_timeout"],
            read_timeout=settings["read_timeout"], concurrency=settings["concurrency"])
        by_id = {result.key: result for result in results}
        now = fields.Datetime.now()
        return self._saas_cron_batches(
            instances,
            lambda instance: instance._record_health(by_id[instance.id], now,
                                                     settings["alert_after"]), 200)

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

    def _record_health(self, result, now, alert_after):
        failures = 0 if result.up else self.health_failures + 1
        history = ((self.health_history or "") +
                   (HEALTH_UP if result.up else HEALTH_DOWN))[-HEALTH_HISTORY:]
        self.sudo().write({
            "health_status": "up" if result.up else "down", "health_checked_at": now,
            "health_response_ms": result.response_ms or 0, "health_failures": failures,
            "health_history": history, "health_error": (result.error or "")[:200] or False})
        if failures == alert_after:
            self._health_alert(result)

    def _health_alert(self, result):
        """A to-do for the responsible operator, once per outage."""
        self.activity_schedule(
            "mail.mail_activity_data_todo", user_id=(self.user_id or self.env.user).id,
            summary=self.env._("%(name)s is down", name=self.name),
            note=self.env._("%(count)s failed checks in a row; last error: %(error)s",
                            count=self.health_failures, error=result.error or "-"))

