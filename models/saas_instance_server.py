"""The server an instance's database lives on."""

from odoo import fields, models
from odoo.exceptions import UserError

from .saas_instance import RENAMEABLE_STATES


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    server_id = fields.Many2one(
        "saas.server", required=True, index=True, ondelete="restrict",
        default=lambda self: self.env["saas.server"]._local(), tracking=True,
        groups="saas_manager.group_saas_user", saas_protected=True,
        help="The PostgreSQL cluster (and Odoo) the database lives on; fixed once "
             "provisioned.")

    def write(self, vals):
        if "server_id" in vals and self.sudo().filtered(
                lambda i: i.server_id.id != vals["server_id"]
                and (i.state not in RENAMEABLE_STATES or i.owned_database)):
            raise UserError(self.env._(
                "The server of an instance whose database exists cannot be changed."))
        return super().write(vals)
