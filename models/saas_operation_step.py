from odoo import fields, models


class SaasOperationStep(models.Model):
    """One timed step of one attempt of an operation (written when the attempt ends)."""

    _name = "saas.operation.step"
    _description = "SaaS Operation Step"
    _order = "operation_id, attempt, sequence, id"

    operation_id = fields.Many2one("saas.operation", required=True, index=True,
                                   ondelete="cascade", readonly=True)
    attempt = fields.Integer(readonly=True)
    sequence = fields.Integer(readonly=True)
    name = fields.Char(string="Step", required=True, readonly=True)
    state = fields.Selection([("done", "Done"), ("failed", "Failed")], required=True,
                             readonly=True)
    seconds = fields.Float(digits=(16, 3), readonly=True)
    error = fields.Text(readonly=True)
