from odoo import fields, models
from odoo.exceptions import UserError


class SaasInstanceTerminate(models.TransientModel):
    """Terminate an instance by hand: the operator types its subdomain to confirm."""

    _name = "saas.instance.terminate"
    _description = "Terminate a SaaS Instance"

    instance_id = fields.Many2one("saas.instance", required=True, ondelete="cascade")
    subdomain = fields.Char(related="instance_id.subdomain")
    confirmation = fields.Char(string="Type the subdomain to confirm")

    def action_confirm(self):
        self.ensure_one()
        instance = self.instance_id
        instance.check_access("write")
        if (self.confirmation or "").strip().lower() != instance.subdomain:
            raise UserError(self.env._("Type %(sub)s to confirm the termination.",
                                       sub=instance.subdomain))
        instance._terminate()
        return {"type": "ir.actions.act_window_close"}
