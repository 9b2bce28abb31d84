from odoo import api, fields, models
from odoo.exceptions import UserError


class SaasBackupRestore(models.TransientModel):
    """Restore a backup: over its instance (in place), or as a new instance."""

    _name = "saas.backup.restore"
    _description = "Restore a SaaS Backup"

    backup_id = fields.Many2one("saas.backup", required=True, ondelete="cascade")
    source_instance_id = fields.Many2one(related="backup_id.instance_id")
    mode = fields.Selection(
        [("in_place", "Over the instance (in place)"), ("new", "As a new instance")],
        required=True, default="in_place")
    name = fields.Char(string="New Instance Name")
    subdomain = fields.Char(string="New Subdomain")
    partner_id = fields.Many2one("res.partner", string="Customer")
    plan_id = fields.Many2one("saas.plan")
    staging = fields.Boolean(
        string="Staging Copy", default=True,
        help="Scheduled actions off and outgoing mail caught (Odoo's neutralization): a "
             "copy to try things on. Untick for a recovery copy that serves the customer.")
    confirmation = fields.Char(string="Type the subdomain to confirm")

    @api.onchange("mode", "backup_id")
    def _onchange_mode(self):
        source = self.backup_id.instance_id
        if self.mode == "new" and source and not self.subdomain:
            self.name = self.env._("%(name)s (copy)", name=source.name)
            self.subdomain = "%s-copy" % source.subdomain
            self.partner_id = source.partner_id
            self.plan_id = source.plan_id

    def action_confirm(self):
        self.ensure_one()
        backup, source = self.backup_id, self.backup_id.instance_id
        source.check_access("write")
        if self.mode == "in_place":
            if (self.confirmation or "").strip().lower() != source.subdomain:
                raise UserError(self.env._(
                    "Type %(sub)s to confirm: its database is replaced by the backup (a "
                    "safety backup is taken first).", sub=source.subdomain))
            source._saas_restore_in_place(backup)
            return {"type": "ir.actions.act_window_close"}
        if not (self.name and self.subdomain and self.partner_id and self.plan_id):
            raise UserError(self.env._("A new instance needs a name, a subdomain, a customer "
                                       "and a plan."))
        instance = self.env["saas.instance"]._saas_restore_as_new(backup, {
            "name": self.name, "subdomain": self.subdomain, "partner_id": self.partner_id.id,
            "plan_id": self.plan_id.id, "template_id": source.template_id.id,
            "company_id": source.company_id.id,
        }, self.staging)
        return {"type": "ir.actions.act_window", "res_model": "saas.instance",
                "res_id": instance.id, "view_mode": "form", "target": "current"}
