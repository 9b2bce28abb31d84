from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError
from odoo.tools import config

from ..engine import naming


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    saas_base_domain = fields.Char(
        string="Base Domain", config_parameter="saas.base_domain",
        help="Instances are reached at <subdomain>.<base domain>, e.g. example.com.")
    saas_routing_mode = fields.Selection(
        [(naming.ROUTING_HOST, "Full host name (dbfilter ^%h$)"),
         (naming.ROUTING_SUBDOMAIN, "First label only (dbfilter ^%d$)")],
        string="Routing Mode", config_parameter="saas.routing_mode",
        default=naming.ROUTING_HOST)
    saas_reserved_subdomains = fields.Char(
        string="Reserved Subdomains", config_parameter="saas.reserved_subdomains",
        help="Comma-separated subdomains no customer may take, on top of the built-in ones.")
    saas_clone_strategy = fields.Selection(
        [("WAL_LOG", "WAL_LOG (PostgreSQL default, faster for small templates)"),
         ("FILE_COPY", "FILE_COPY (faster for large templates on a quiet cluster)")],
        string="Clone Strategy", config_parameter="saas.clone_strategy", default="WAL_LOG")
    # Stored by get_values/set_values below, not with config_parameter=: Odoo deletes a
    # config_parameter whose value is False or 0, which would bring the default back
    # (an operator could never turn posting off, or set a grace of 0 days).
    saas_invoice_auto_post = fields.Boolean(
        string="Post Subscription Invoices", default=True,
        help="Post invoices at once; otherwise they stay in draft for review.")
    saas_payment_grace_days = fields.Integer(
        string="Payment Grace (days)", default=7,
        help="An invoice still unpaid this many days after its due date suspends the instance.")
    saas_limit_policy = fields.Selection(
        [("notify", "Notify the customer and flag the instance"),
         ("suspend", "Notify, then suspend after the grace days")],
        string="Over-limit Policy", config_parameter="saas.limit_policy", default="notify")
    saas_limit_suspend_days = fields.Integer(string="Over-limit Grace (days)", default=7)
    saas_health_alert_failures = fields.Integer(
        string="Alert After Failed Checks", default=3,
        help="Consecutive failed hourly checks before the responsible gets a to-do.")
    saas_required_dbfilter = fields.Char(string="Required dbfilter",
                                         compute="_compute_saas_dbfilter")
    saas_server_dbfilter = fields.Char(string="Server dbfilter",
                                       compute="_compute_saas_dbfilter")
    saas_dbfilter_mismatch = fields.Boolean(compute="_compute_saas_dbfilter")

    #: field -> (parameter, default); stored as text so that False and 0 are kept.
    _SAAS_TEXT_PARAMS = {
        "saas_invoice_auto_post": ("saas.invoice_auto_post", True),
        "saas_payment_grace_days": ("saas.payment_grace_days", 7),
        "saas_limit_suspend_days": ("saas.limit_suspend_days", 7),
        "saas_health_alert_failures": ("saas.health_alert_failures", 3),
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
        get = self.env["ir.config_parameter"].sudo().get_param
        for name, (key, default) in self._SAAS_TEXT_PARAMS.items():
            value = get(key, str(default))
            res[name] = value == "True" if isinstance(default, bool) else int(value or 0)
        return res

    def set_values(self):
        self._saas_check_settings_access()
        result = super().set_values()
        set_param = self.env["ir.config_parameter"].sudo().set_param
        for name, (key, default) in self._SAAS_TEXT_PARAMS.items():
            value = self[name]
            set_param(key, str(bool(value)) if isinstance(default, bool) else str(value or 0))
        return result

    @api.depends("saas_routing_mode")
    def _compute_saas_dbfilter(self):
        server = config.get("dbfilter") or ""
        for settings in self:
            required = naming.dbfilter_for(settings.saas_routing_mode or naming.ROUTING_HOST)
            settings.saas_required_dbfilter = required
            settings.saas_server_dbfilter = server or self.env._("(not set)")
            settings.saas_dbfilter_mismatch = server != required

    @api.constrains("saas_payment_grace_days", "saas_limit_suspend_days",
                    "saas_health_alert_failures")
    def _check_saas_numbers(self):
        for settings in self:
            if min(settings.saas_payment_grace_days, settings.saas_limit_suspend_days) < 0 or (
                    settings.saas_health_alert_failures < 1):
                raise ValidationError(self.env._(
                    "Grace days cannot be negative and alerts need at least one failure."))

    @api.constrains("saas_base_domain")
    def _check_saas_base_domain(self):
        for settings in self.filtered("saas_base_domain"):
            try:
                naming.check_base_domain(settings.saas_base_domain)
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
