"""saas.update.line: one instance of an update campaign, and how its update went."""

from odoo import fields, models

LINE_STATES = [
    ("pending", "To Do"),
    ("running", "Running"),
    ("done", "Updated"),
    ("skipped", "Skipped"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]


class SaasUpdateLine(models.Model):
    _name = "saas.update.line"
    _description = "SaaS Update Campaign Instance"
    _order = "campaign_id, sequence, id"
    _rec_name = "instance_id"

    campaign_id = fields.Many2one("saas.update.campaign", required=True, ondelete="cascade",
                                  index=True, readonly=True)
    instance_id = fields.Many2one("saas.instance", required=True, ondelete="cascade",
                                  index=True, readonly=True)
    sequence = fields.Integer(readonly=True)
    canary = fields.Boolean(readonly=True)
    state = fields.Selection(LINE_STATES, default="pending", required=True, readonly=True,
                             index=True)
    operation_id = fields.Many2one("saas.operation", readonly=True, ondelete="set null",
                                   index="btree_not_null")
    note = fields.Char(readonly=True, help="Why the instance was skipped, or what was done.")
    error = fields.Text(related="operation_id.error")
    log_tail = fields.Text(related="operation_id.log_tail")
    step = fields.Char(related="operation_id.step")
    seconds = fields.Float(string="Duration (s)", related="operation_id.seconds")
    started_at = fields.Datetime(related="operation_id.started_at")
    ended_at = fields.Datetime(related="operation_id.ended_at")

    def _saas_start(self):
        """Queue the instance's update; or skip it (no longer active, or its earlier
        update failed and no operator has cleared it)."""
        self.ensure_one()
        instance = self.instance_id
        if instance.state != "active":
            self._saas_skip(self.env._("Not active."))
            return
        if instance.update_state:
            self._saas_skip(self.env._(
                "An earlier update failed: clear it on the instance first."))
            return
        operation = self.env["saas.operation"]._queue(
            instance, "update", self.campaign_id._saas_params(instance))
        self.write({"state": "running", "operation_id": operation.id})
        self.campaign_id._saas_notify()

    def _saas_skip(self, note):
        self.write({"state": "skipped", "note": note})
        self._saas_promote_canary()

    def _saas_promote_canary(self):
        """A canary that was not updated (skipped, cancelled) proves nothing: the next
        line waiting becomes a canary in its place."""
        if not self.canary or self.state not in ("skipped", "cancelled"):
            return
        waiting = self.campaign_id.line_ids.filtered(
            lambda line: line.state == "pending" and not line.canary).sorted("sequence")[:1]
        waiting.write({"canary": True})

    def _saas_ended(self, state):
        """The update operation ended (``done``, ``skipped``, ``failed``, ``cancelled``):
        the campaign goes on."""
        if state == "cancelled" and self.state != "running":
            return  # a failed update's operation cancelled afterwards: it stays failed
        params = self.operation_id.params or {}
        note = False
        if state == "done":
            note = self.env._("Updated: %(up)s; installed: %(inst)s",
                              up=", ".join(params.get("update") or ()) or "-",
                              inst=", ".join(params.get("install") or ()) or "-")
        elif state == "skipped":
            note = self.env._("Up to date: nothing changed.")
        self.write({"state": state, "note": note})
        self._saas_promote_canary()
        campaign = self.campaign_id
        campaign._saas_notify()
        # At once: a failed canary stops it, the next lines start, the report is written.
        if campaign.state == "running":
            campaign._saas_advance()
        else:
            campaign._saas_finish_if_ended()

    def action_open_operation(self):
        self.ensure_one()
        return self.operation_id.action_view_steps()
