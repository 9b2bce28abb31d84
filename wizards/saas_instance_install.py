from odoo import api, fields, models

from ..engine import fleet


class SaasInstanceInstall(models.TransientModel):
    """Install apps on one instance (a customer asked for them): backed up, checked, and
    rolled back on failure like a campaign's update; the plan's allowed apps apply."""

    _name = "saas.instance.install"
    _description = "Install Apps on a SaaS Instance"

    instance_id = fields.Many2one("saas.instance", required=True, ondelete="cascade")
    module_names = fields.Char(string="Modules", required=True,
                               help="Technical names, separated by commas or spaces.")
    allowed_module_names = fields.Text(compute="_compute_allowed_module_names",
                                       string="Allowed by the Plan")

    @api.depends("instance_id")
    def _compute_allowed_module_names(self):
        for wizard in self:
            wizard.allowed_module_names = (
                wizard.instance_id.plan_id.allowed_module_names or self.env._("Any module"))

    def action_confirm(self):
        self.ensure_one()
        self.instance_id._saas_install_apps(fleet.split_modules(self.module_names))
        return {"type": "ir.actions.act_window_close"}
