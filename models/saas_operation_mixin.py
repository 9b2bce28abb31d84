from odoo import fields, models


class SaasOperationMixin(models.AbstractModel):
    """What a target of operations (an instance, a template) shows of them: a smart
    button, the step being run and the error of the last one."""

    _name = "saas.operation.mixin"
    _description = "SaaS Operation Target"
    #: The saas.operation field pointing to this model.
    _saas_operation_link = None

    operation_count = fields.Integer(compute="_compute_operation_info")
    operation_step = fields.Char(string="Current Step", compute="_compute_operation_info",
                                 groups="saas_manager.group_saas_user")
    operation_error = fields.Text(string="Last Error", compute="_compute_operation_info",
                                  groups="saas_manager.group_saas_user")

    def _compute_operation_info(self):
        Operation = self.env["saas.operation"].sudo()
        link = self._saas_operation_link
        counts = dict(Operation._read_group([(link, "in", self.ids)], [link], ["__count"]))
        for record in self:
            last = Operation.search([(link, "=", record.id)], order="id desc", limit=1)
            record.operation_count = counts.get(record.sudo(), 0)
            record.operation_step = last.step if last.state in ("queued", "running") else False
            record.operation_error = last.error if last.state == "failed" else False

    def action_view_operations(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_operation")
        action["domain"] = [(self._saas_operation_link, "=", self.id)]
        action["context"] = {}
        return action
