from odoo import fields, models
from odoo.exceptions import UserError


class SaasTemplateDelete(models.TransientModel):
    """Delete an unused template, and say what happens to its database."""

    _name = "saas.template.delete"
    _description = "Delete a SaaS Template"

    template_id = fields.Many2one("saas.template", required=True, ondelete="cascade")
    database_name = fields.Char(related="template_id.database_name")
    drop_database = fields.Boolean(
        help="Drop the template database and its filestore too. A verified backup "
             "(database dump and filestore archive) is taken first and kept as a Backup "
             "record (SaaS Manager > Backups).")

    def action_confirm(self):
        self.ensure_one()
        template = self.template_id
        template.check_access("unlink")
        if template.with_context(active_test=False).instance_ids:
            raise UserError(self.env._("%(name)s still has instances: archive it instead.",
                                       name=template.name))
        if template.state == "building":
            raise UserError(self.env._("%(name)s is being built: wait for the build to end.",
                                       name=template.name))
        backup = template._backup_and_drop() if self.drop_database else False
        name = template.name
        template.unlink()
        message = self.env._("Template %(name)s deleted.", name=name)
        done = {"type": "ir.actions.act_window_close"}
        if backup:
            message += " " + self.env._(
                "Its database was dropped after a verified backup: %(backup)s (%(dump)s, "
                "%(archive)s).", backup=backup.display_name, dump=backup.dump_path,
                archive=backup.filestore_path)
            done = {"type": "ir.actions.act_window", "res_model": "saas.backup",
                    "res_id": backup.id, "view_mode": "form", "views": [(False, "form")],
                    "target": "current"}
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"message": message, "type": "success", "next": done}}
