"""The operator's home page: the business and the fleet at a glance.

One call (:meth:`SaasDashboard.get_tiles`) computes every tile with a few
aggregate queries; each tile carries the window action that lists what it
counts, so a click shows exactly the records behind the number.
"""

from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import format_amount

from .account_move import SETTLED_PAYMENT_STATES

#: The window action whose views list the records of each model a tile counts.
LIST_ACTIONS = {"saas.instance": "saas_manager.action_saas_instance",
                "saas.subscription": "saas_manager.action_saas_subscription",
                "saas.operation": "saas_manager.action_saas_operation",
                "saas.incident": "saas_manager.action_saas_incident",
                "account.move": "account.action_move_out_invoice_type"}


class SaasDashboard(models.AbstractModel):
    _name = "saas.dashboard"
    _description = "SaaS Dashboard"

    @api.model
    def get_tiles(self):
        """The tiles, in display order: ``{key, label, value, tone, action}``."""
        if not self.env.user.has_group("saas_manager.group_saas_user"):
            raise AccessError(self.env._("The SaaS dashboard is for SaaS users."))
        tiles = [self._tile_mrr()] if self.env.user.has_group(
            "saas_manager.group_saas_manager") else []
        tiles += [
            self._tile_count("active", self.env._("Active"), "saas.instance",
                             [("state", "=", "active")]),
            self._tile_count("trials", self.env._("Trials"), "saas.subscription",
                             [("state", "=", "trial")]),
            self._tile_count("suspended", self.env._("Suspended"), "saas.instance",
                             [("state", "=", "suspended")], tone="warning"),
            self._tile_count("down", self.env._("Down Now"), "saas.instance",
                             [("state", "=", "active"), ("health_status", "=", "down")],
                             tone="danger"),
            self._tile_count("failed", self.env._("Failed Operations"), "saas.operation",
                             [("state", "=", "failed")], tone="danger"),
            self._tile_count("backups", self.env._("Backups Overdue"), "saas.instance",
                             [("id", "in", self._backups_overdue().ids)], tone="danger"),
            self._tile_count("incidents", self.env._("Open Incidents"), "saas.incident",
                             [("state", "=", "open")], tone="danger"),
        ]
        if self.env.user.has_group("saas_manager.group_saas_manager"):
            tiles.insert(4, self._tile_count(
                "overdue", self.env._("Overdue Invoices"), "account.move",
                self._overdue_domain(), tone="warning"))
        return tiles

    @api.model
    def _tile_count(self, key, label, model, domain, tone="primary"):
        count = self.env[model].search_count(domain)
        return {"key": key, "label": label, "value": str(count), "count": count,
                "tone": tone if count else "muted",
                "action": self._list_action(model, label, domain)}

    @api.model
    def _tile_mrr(self):
        """The MRR of the user's company: the sum of its subscriptions' last logged
        values (the MRR log's rules), shown in the company's currency."""
        company = self.env.company
        total = self.env["saas.subscription.log"]._saas_mrr_by_company(
            [("company_id", "=", company.id)]).get(company, 0.0)
        return {"key": "mrr", "label": self.env._("MRR"),
                "value": format_amount(self.env, total or 0.0, company.currency_id),
                "count": total or 0.0, "tone": "primary",
                "action": self.env["ir.actions.act_window"]._for_xml_id(
                    "saas_manager.action_saas_kpi_report")}

    @api.model
    def _overdue_domain(self):
        return [("saas_subscription_id", "!=", False), ("move_type", "=", "out_invoice"),
                ("state", "=", "posted"), ("payment_state", "not in", SETTLED_PAYMENT_STATES),
                ("invoice_date_due", "<", fields.Date.context_today(self))]

    @api.model
    def _backups_overdue(self):
        """Active instances with a backup schedule whose newest good backup (verified, drill
        not failed) is older than two intervals (a slot was missed), or missing while the
        instance is older."""
        instances = self.env["saas.instance"].search(
            [("state", "=", "active"), ("plan_id.backup_interval_hours", ">", 0)])
        newest = self.env["saas.backup"]._saas_newest_good(instances)
        now = fields.Datetime.now()
        return instances.filtered(lambda instance: (
            newest.get(instance.sudo()) or instance.create_date) < now - timedelta(
                hours=2 * instance.plan_id.backup_interval_hours))

    @api.model
    def _list_action(self, model, name, domain):
        """The model's own action (its views, its search), showing ``domain`` only."""
        action = self.env["ir.actions.act_window"]._for_xml_id(LIST_ACTIONS[model])
        action.update(name=name, domain=domain, context={}, target="current")
        return action
