"""Usage: users and storage measured, and the plan's limits applied."""

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine import usage


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    user_count = fields.Integer(string="Users Used", readonly=True, copy=False, saas_protected=True)
    user_limit = fields.Integer(related="plan_id.max_users", string="Users Allowed")
    database_mb = fields.Float(string="Database (MB)", readonly=True, copy=False,
                               digits=(16, 1), groups="saas_manager.group_saas_user",
                               saas_protected=True)
    filestore_mb = fields.Float(string="Filestore (MB)", readonly=True, copy=False,
                                digits=(16, 1), groups="saas_manager.group_saas_user",
                                saas_protected=True)
    storage_mb = fields.Float(string="Storage Used (MB)", readonly=True, copy=False,
                              digits=(16, 1), help="Database plus filestore.", saas_protected=True)
    storage_limit_gb = fields.Integer(related="plan_id.storage_gb", string="Storage Allowed (GB)")
    usage_checked_at = fields.Datetime(string="Usage Measured", readonly=True, copy=False,
                                       saas_protected=True)
    user_limit_exceeded = fields.Boolean(readonly=True, copy=False, saas_protected=True)
    storage_limit_exceeded = fields.Boolean(readonly=True, copy=False, saas_protected=True)
    limit_exceeded_since = fields.Date(readonly=True, copy=False, saas_protected=True)

    # -- usage and limits ------------------------------------------------------------
    def action_refresh_usage(self):
        """Measure users and storage now (the limits cron does it every night)."""
        self.check_access("write")
        for instance in self.sudo().filtered(lambda i: i.state in ("active", "suspended")):
            instance._refresh_usage()
        return True

    def _refresh_usage(self):
        """Users (active internal ones, by read-only SQL) and database + filestore size.

        A suspended database refuses connections: its user count stays the
        last one measured, its sizes are still read.
        """
        self.ensure_one()
        name = self._owned_database_name()
        server = self._saas_server()
        measured = usage.measure(server.pg, [name], server.data_dir)[name]
        if measured.error:
            raise UserError(self.env._("Cannot measure %(db)s: %(error)s",
                                       db=name, error=measured.error))
        values = {"database_mb": (measured.database_bytes or 0) / 2**20,
                  "filestore_mb": measured.filestore_bytes / 2**20,
                  "storage_mb": measured.storage_bytes / 2**20,
                  "usage_checked_at": fields.Datetime.now()}
        if measured.users is not None:
            values["user_count"] = measured.users
        self.sudo().write(values)
        return measured

    @api.model
    def _cron_check_limits(self):
        """03:00: measure every live instance and apply the plan's limits."""
        instances = self.sudo().search([("state", "in", ("active", "suspended"))], order="id")
        today = fields.Date.context_today(self)
        policy = self._limit_policy()
        self.env["saas.server"]._cron_measure()  # and the disk each server holds
        return self._saas_cron_batches(
            instances, lambda instance: instance._check_limits(today, policy), 50)

    @api.model
    def _limit_policy(self):
        get = self.env["saas.settings"]._get
        return {"action": get("saas.limit_policy"), "days": get("saas.limit_suspend_days")}

    def _check_limits(self, today, policy):
        """Flag and notify when over the plan (0 = unlimited); suspend after N days
        when the policy says so."""
        self._refresh_usage()
        plan = self.plan_id
        over_users = bool(plan.max_users) and self.user_count > plan.max_users
        over_storage = bool(plan.storage_gb) and self.storage_mb > plan.storage_gb * 1024
        if over_users and not self.user_limit_exceeded:
            self._notify("saas_manager.mail_template_user_limit")
        if over_storage and not self.storage_limit_exceeded:
            self._notify("saas_manager.mail_template_storage_limit")
        over = over_users or over_storage
        since = (self.limit_exceeded_since or today) if over else False
        self.sudo().write({"user_limit_exceeded": over_users,
                           "storage_limit_exceeded": over_storage,
                           "limit_exceeded_since": since})
        self._limits_incident()
        if (over and policy["action"] == "suspend" and self.state == "active"
                and fields.Date.add(since, days=policy["days"]) <= today):
            self._suspend("user_limit" if over_users else "storage_limit")
        elif (not over and self.state == "suspended"
              and self.suspension_reason in ("user_limit", "storage_limit")
              and self.subscription_id.state in (False, "trial", "active", "expiring")):
            self._reactivate()  # back under the limits, or the plan was upgraded

    def _limits_incident(self):
        """An incident while the instance is over its plan, closed when it no longer is."""
        incidents = self.env["saas.incident"]
        if not (self.user_limit_exceeded or self.storage_limit_exceeded):
            incidents._saas_resolve("limits", self, self.env._("Back within the plan."))
            return
        incidents._saas_open(
            "limits", self, self.env._("%(name)s is over its plan's limits", name=self.name),
            self.env._("Users: %(users)s of %(max_users)s; storage: %(mb).0f MB of %(gb)s GB "
                       "(0 = unlimited).", users=self.user_count, max_users=self.user_limit,
                       mb=self.storage_mb, gb=self.storage_limit_gb))
