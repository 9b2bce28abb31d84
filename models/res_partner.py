from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    saas_instance_ids = fields.One2many("saas.instance", "partner_id", string="SaaS Instances")
    saas_subscription_ids = fields.One2many("saas.subscription", "partner_id",
                                            string="SaaS Subscriptions")
    saas_instance_count = fields.Integer(compute="_compute_saas_counts",
                                         groups="saas_manager.group_saas_user")
    saas_subscription_count = fields.Integer(compute="_compute_saas_counts",
                                             groups="saas_manager.group_saas_user")

    def _compute_saas_counts(self):
        """Counts over the whole commercial entity, like Odoo's sale/invoice buttons."""
        for field, model in (("saas_instance_count", "saas.instance"),
                             ("saas_subscription_count", "saas.subscription")):
            counts = dict(self.env[model]._read_group(
                [("commercial_partner_id", "in", self.commercial_partner_id.ids)],
                ["commercial_partner_id"], ["__count"]))
            for partner in self:
                partner[field] = counts.get(partner.commercial_partner_id, 0)

    def _saas_action(self, xmlid):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(xmlid)
        action["domain"] = [("partner_id", "child_of", self.commercial_partner_id.id)]
        action["context"] = {"default_partner_id": self.id}
        return action

    def action_view_saas_instances(self):
        return self._saas_action("saas_manager.action_saas_instance")

    def action_view_saas_subscriptions(self):
        return self._saas_action("saas_manager.action_saas_subscription")
