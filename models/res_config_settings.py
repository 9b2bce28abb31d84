from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError

from ..engine import naming
from .saas_health_check import MIN_RETENTION_DAYS
from .saas_settings import SETTINGS, conf, offsite_store


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    saas_base_domain = fields.Char(
        string="Base Domain", config_parameter="saas.base_domain",
        help="Instances are reached at <subdomain>.<base domain>, e.g. example.com.")
    saas_routing_mode = fields.Selection(
        [(naming.ROUTING_HOST, "Full host name (dbfilter ^%h$)"),
         (naming.ROUTING_SUBDOMAIN, "First label only (dbfilter ^%d$)")],
        string="Routing Mode", config_parameter="saas.routing_mode",
        default=SETTINGS["saas.routing_mode"][1])
    saas_reserved_subdomains = fields.Char(
        string="Reserved Subdomains", config_parameter="saas.reserved_subdomains",
        help="Comma-separated subdomains no customer may take, on top of the built-in ones.")
    saas_clone_strategy = fields.Selection(
        [("WAL_LOG", "WAL_LOG (PostgreSQL default, faster for small templates)"),
         ("FILE_COPY", "FILE_COPY (faster for large templates on a quiet cluster)")],
        string="Clone Strategy", config_parameter="saas.clone_strategy",
        default=SETTINGS["saas.clone_strategy"][1])
    # Stored by get_values/set_values below, not with config_parameter=: Odoo deletes a
    # config_parameter whose value is False or 0, which would bring the default back
    # (an operator could never turn posting off, or set a grace of 0 days).
    saas_invoice_auto_post = fields.Boolean(
        string="Post Subscription Invoices", default=SETTINGS["saas.invoice_auto_post"][1],
        help="Post invoices at once; otherwise they stay in draft for review.")
    saas_payment_grace_days = fields.Integer(
        string="Payment Grace (days)", default=SETTINGS["saas.payment_grace_days"][1],
        help="An invoice still unpaid this many days after its due date suspends the instance.")
    saas_limit_policy = fields.Selection(
        [("notify", "Notify the customer and flag the instance"),
         ("suspend", "Notify, then suspend after the grace days")],
        string="Over-limit Policy", config_parameter="saas.limit_policy",
        default=SETTINGS["saas.limit_policy"][1])
    saas_limit_suspend_days = fields.Integer(string="Over-limit Grace (days)",
                                             default=SETTINGS["saas.limit_suspend_days"][1])
    saas_health_alert_failures = fields.Integer(
        string="Alert After Failed Checks", default=SETTINGS["saas.health_alert_failures"][1],
        help="Consecutive failed hourly checks before the responsible gets a to-do.")
    saas_health_retention_days = fields.Integer(
        string="Keep Health Checks (days)", default=SETTINGS["saas.health_retention_days"][1],
        help="Health checks older than this are deleted; at least 31 days, so the 30-day "
             "uptime always has its whole window.")
    saas_operation_max_attempts = fields.Integer(
        string="Operation Attempts", default=SETTINGS["saas.operation_max_attempts"][1],
        help="Attempts of an operation whose failures go away by themselves (a server not "
             "reachable, a database still in use) before an operator is needed.")
    saas_operation_retry_seconds = fields.Integer(
        string="First Retry After (s)", default=SETTINGS["saas.operation_retry_seconds"][1],
        help="Delay before the first retry; each further retry waits twice as long.")
    saas_backup_final_retention_days = fields.Integer(
        string="Keep Final Backups (days)",
        default=SETTINGS["saas.backup_final_retention_days"][1],
        help="A terminated instance's backups are deleted this many days after its final "
             "backup (0 = kept for good).")
    saas_backup_manual_retention_days = fields.Integer(
        string="Keep Manual Backups (days)",
        default=SETTINGS["saas.backup_manual_retention_days"][1])
    saas_backup_before_operation_retention_days = fields.Integer(
        string="Keep Safety Backups (days)",
        default=SETTINGS["saas.backup_before_operation_retention_days"][1],
        help="Backups taken before a restore or a refresh.")
    saas_backup_local_hours = fields.Integer(
        string="Local Copies (hours)", default=SETTINGS["saas.backup_local_hours"][1],
        help="A backup copied off-site keeps its files on the server this many hours "
             "(0 = until it is pruned).")
    saas_backup_drill_sample = fields.Integer(
        string="Backups Drilled Weekly", default=SETTINGS["saas.backup_drill_sample"][1])
    saas_backup_schedule_batch = fields.Integer(
        string="Backups Queued at Once", default=SETTINGS["saas.backup_schedule_batch"][1],
        help="Scheduled backups waiting for the backup runner at most; the others wait for "
             "the next run of the schedule (every 10 minutes).")
    # Read from odoo.conf when the screen opens (defaults, not computed fields: the
    # settings form only computes fields that depend on another one).
    saas_offsite_configured = fields.Boolean(default=lambda self: bool(offsite_store()),
                                             readonly=True)
    saas_offsite_target = fields.Char(string="Object Store", readonly=True,
                                      default=lambda self: self._saas_offsite_target())
    saas_required_dbfilter = fields.Char(string="Required dbfilter",
                                         compute="_compute_saas_dbfilter")
    saas_server_dbfilter = fields.Char(string="Server dbfilter",
                                       compute="_compute_saas_dbfilter")
    saas_dbfilter_mismatch = fields.Boolean(compute="_compute_saas_dbfilter")

    #: field -> parameter, read and written through saas.settings (text, so that False
    #: and 0 are kept).
    _SAAS_TEXT_PARAMS = {
        "saas_invoice_auto_post": "saas.invoice_auto_post",
        "saas_payment_grace_days": "saas.payment_grace_days",
        "saas_limit_suspend_days": "saas.limit_suspend_days",
        "saas_health_alert_failures": "saas.health_alert_failures",
        "saas_health_retention_days": "saas.health_retention_days",
        "saas_operation_max_attempts": "saas.operation_max_attempts",
        "saas_operation_retry_seconds": "saas.operation_retry_seconds",
        "saas_backup_final_retention_days": "saas.backup_final_retention_days",
        "saas_backup_manual_retention_days": "saas.backup_manual_retention_days",
        "saas_backup_before_operation_retention_days":
            "saas.backup_before_operation_retention_days",
        "saas_backup_local_hours": "saas.backup_local_hours",
        "saas_backup_drill_sample": "saas.backup_drill_sample",
        "saas_backup_schedule_batch": "saas.backup_schedule_batch",
    }

    def _saas_check_settings_access(self):
        """Only settings administrators (the users ``execute()`` admits) reach the settings.

        Odoo's own ``default_get``/``get_values``/``set_values`` never check their
        caller and are public methods: over RPC, any internal user could read
        every setting, or call ``set_values`` on an empty recordset and wipe
        parameters (ours and other modules').  Checked before ``super()`` so the
        core part is not reachable through these overrides either.
        """
        if not self.env.is_admin():
            raise AccessError(self.env._("Only administrators can read or change the settings."))

    @api.model
    def default_get(self, fields):
        self._saas_check_settings_access()  # it reads every config_parameter field
        return super().default_get(fields)

    @api.model
    def get_values(self):
        self._saas_check_settings_access()
        res = super().get_values()
        get = self.env["saas.settings"]._get
        res.update({name: get(key) for name, key in self._SAAS_TEXT_PARAMS.items()})
        return res

    def set_values(self):
        self._saas_check_settings_access()
        result = super().set_values()
        for name, key in self._SAAS_TEXT_PARAMS.items():
            self.env["saas.settings"]._set(key, self[name])
        return result

    @api.model
    def _saas_offsite_target(self):
        store = offsite_store()
        return store and "%s/%s (prefix %s)" % (store.endpoint or "AWS S3", store.bucket,
                                                store.prefix or "-")

    @api.depends("saas_routing_mode")
    def _compute_saas_dbfilter(self):
        server = conf("dbfilter", "")
        for settings in self:
            required = naming.dbfilter_for(settings.saas_routing_mode or naming.ROUTING_HOST)
            settings.saas_required_dbfilter = required
            settings.saas_server_dbfilter = server or self.env._("(not set)")
            settings.saas_dbfilter_mismatch = server != required

    @api.constrains("saas_payment_grace_days", "saas_limit_suspend_days",
                    "saas_health_alert_failures", "saas_health_retention_days",
                    "saas_operation_max_attempts", "saas_operation_retry_seconds",
                    "saas_backup_final_retention_days", "saas_backup_manual_retention_days",
                    "saas_backup_before_operation_retention_days", "saas_backup_local_hours",
                    "saas_backup_drill_sample", "saas_backup_schedule_batch")
    def _check_saas_numbers(self):
        for settings in self:
            if min(settings.saas_backup_final_retention_days,
                   settings.saas_backup_manual_retention_days,
                   settings.saas_backup_before_operation_retention_days,
                   settings.saas_backup_local_hours) < 0 or min(
                    settings.saas_backup_drill_sample, settings.saas_backup_schedule_batch) < 1:
                raise ValidationError(self.env._(
                    "Backup retention cannot be negative; at least one backup is drilled and "
                    "queued at a time."))
            if min(settings.saas_payment_grace_days, settings.saas_limit_suspend_days) < 0 or (
                    settings.saas_health_alert_failures < 1):
                raise ValidationError(self.env._(
                    "Grace days cannot be negative and alerts need at least one failure."))
            if settings.saas_health_retention_days < MIN_RETENTION_DAYS:
                raise ValidationError(self.env._(
                    "Health checks must be kept at least %(days)s days: the 30-day uptime "
                    "is computed from them.", days=MIN_RETENTION_DAYS))
            if settings.saas_operation_max_attempts < 1 or (
                    settings.saas_operation_retry_seconds < 1):
                raise ValidationError(self.env._(
                    "Operations need at least one attempt and a retry delay of at least one "
                    "second."))

    @api.constrains("saas_base_domain")
    def _check_saas_base_domain(self):
        for settings in self.filtered("saas_base_domain"):
            try:
                naming.check_base_domain(settings.saas_base_domain)
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
