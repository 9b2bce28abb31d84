import base64
import binascii

from odoo import fields, models
from odoo.exceptions import UserError
from odoo.modules.module import get_module_path

from ..engine import odoo_zip


class SaasInstanceImport(models.TransientModel):
    """A new instance from an Odoo backup zip (a customer moving in from elsewhere)."""

    _name = "saas.instance.import"
    _description = "Import an Odoo Backup as a SaaS Instance"

    backup_file = fields.Binary(string="Odoo Backup (.zip)", required=True, attachment=False)
    backup_filename = fields.Char()
    name = fields.Char(required=True)
    subdomain = fields.Char(required=True)
    partner_id = fields.Many2one("res.partner", string="Customer", required=True)
    plan_id = fields.Many2one("saas.plan", required=True)
    template_id = fields.Many2one(
        "saas.template", required=True, domain=[("state", "=", "ready")],
        help="The vertical the instance counts as (the zip brings its own modules).")

    def action_confirm(self):
        """Check the zip before anything is created, then queue the import."""
        self.ensure_one()
        Instance = self.env["saas.instance"]
        Instance.check_access("create")
        try:
            data = base64.b64decode(self.backup_file, validate=True)
        except (binascii.Error, TypeError) as exc:
            raise UserError(self.env._("The upload is not a file.")) from exc
        name = Instance._saas_store_import(data)
        path = Instance._saas_import_path(name)
        try:
            summary = odoo_zip.inspect(path, self._limits())
            self._check_modules(summary.manifest)
            instance = Instance._saas_import({
                "name": self.name, "subdomain": self.subdomain,
                "partner_id": self.partner_id.id, "plan_id": self.plan_id.id,
                "template_id": self.template_id.id}, name)
        except odoo_zip.ZipRejected as exc:
            Instance._saas_remove_import(name)
            raise UserError(self.env._("This is not an Odoo backup that can be imported: "
                                       "%(reason)s", reason=str(exc))) from exc
        except Exception:
            Instance._saas_remove_import(name)
            raise
        return {"type": "ir.actions.act_window", "res_model": "saas.instance",
                "res_id": instance.id, "view_mode": "form", "target": "current"}

    def _limits(self):
        megabytes = self.env["saas.settings"]._get("saas.backup_import_max_mb")
        return odoo_zip.Limits(max_total_bytes=megabytes * 2**20)

    def _check_modules(self, manifest):
        """Refuse a database using modules this server does not have (it would not load)."""
        missing = sorted(name for name in (manifest or {}).get("modules", {})
                         if not get_module_path(name, display_warning=False))
        if missing:
            raise UserError(self.env._(
                "The backup uses modules this server does not have: %(modules)s.",
                modules=", ".join(missing)))
