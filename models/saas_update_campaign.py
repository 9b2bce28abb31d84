"""saas.update.campaign: module updates across many instances, canary first.

A campaign names its instances (all active ones, those of some templates or
plans, or a selection) and what to do to each: update every module whose
code changed (checksums, ``engine.modules``: an instance whose code did not
change is skipped after three small queries), update listed modules, or bring
instances cloned from an older template revision to the current one
(install the modules the template gained, update what changed).

**Started**, it gets one line per instance (the order of the instances' ids)
and is advanced by its cron, woken whenever one of its instances' update
operations ends: the first *canary* lines run before any other (up to the
concurrency at once); a canary that fails stops the campaign (the failed
instance is restored, the others are not touched), one that is skipped hands
its role to the next line.  Then the other lines run, at most *concurrency* at a time (each
update is a detached Odoo process polled by the operation runner), and only
inside the maintenance window (local hours of the campaign's time zone).
Instances whose earlier update failed are skipped until an operator clears
them.  Pause stops new lines from starting (those running end), Resume goes
on, Cancel cancels the lines not started (updates already queued or running
end by themselves, and the report waits for them).  When every line has ended, the
report (counts, durations, failures) is written on the campaign and in its
chatter.
"""

import logging

import pytz
from markupsafe import Markup

from odoo import api, fields, models
from odoo.addons.base.models.res_partner import _tz_get
from odoo.exceptions import UserError

from ..engine import fleet
from ..engine import modules as engine_modules
from .saas_operation import BUS_TYPE

CAMPAIGN_STATES = [
    ("draft", "Draft"),
    ("running", "Running"),
    ("paused", "Paused"),
    ("done", "Done"),
    ("stopped", "Stopped"),
    ("cancelled", "Cancelled"),
]
SCOPES = [("all", "All Active Instances"), ("template", "By Template"),
          ("plan", "By Plan"), ("selection", "Selected Instances")]
MODES = [("changed", "Modules Whose Code Changed"), ("listed", "Listed Modules"),
         ("revision", "Template Revision Upgrade")]
CRON = "saas_manager.ir_cron_saas_update_campaign"
_logger = logging.getLogger(__name__)


class SaasUpdateCampaign(models.Model):
    _name = "saas.update.campaign"
    _description = "SaaS Update Campaign"
    _inherit = ["mail.thread", "saas.lifecycle.mixin"]
    _order = "id desc"

    name = fields.Char(required=True, tracking=True)
    state = fields.Selection(CAMPAIGN_STATES, default="draft", required=True, readonly=True,
                             tracking=True, index=True)
    scope = fields.Selection(SCOPES, default="all", required=True)
    template_ids = fields.Many2many("saas.template", string="Templates")
    plan_ids = fields.Many2many("saas.plan", string="Plans")
    instance_ids = fields.Many2many("saas.instance", string="Instances",
                                    domain="[('state', '=', 'active')]")
    mode = fields.Selection(MODES, string="Update", default="changed", required=True)
    module_names = fields.Text(string="Modules",
                               help="Technical names, separated by commas or spaces.")
    canary_count = fields.Integer(
        string="Canary Instances", default=1,
        help="The first instances are updated alone first; if one fails, the campaign stops.")
    concurrency = fields.Integer(default=2, help="Updates running at once, at most.")
    window_start = fields.Float(default=0.0, help="Local hour from which updates may start.")
    window_end = fields.Float(default=0.0, help="Local hour until which updates may start "
                                               "(the same as the start: any time).")
    tz = fields.Selection(_tz_get, string="Time Zone", required=True,
                          default=lambda self: self.env.user.tz or "UTC")
    line_ids = fields.One2many("saas.update.line", "campaign_id", string="Campaign Lines",
                               readonly=True)
    started_at = fields.Datetime(readonly=True)
    ended_at = fields.Datetime(readonly=True)
    line_count = fields.Integer(compute="_compute_counts")
    done_count = fields.Integer(string="Updated", compute="_compute_counts")
    skipped_count = fields.Integer(string="Skipped", compute="_compute_counts")
    failed_count = fields.Integer(string="Failed", compute="_compute_counts")
    pending_count = fields.Integer(string="To Do", compute="_compute_counts")
    progress = fields.Float(compute="_compute_counts")
    report = fields.Html(readonly=True, sanitize=True)

    _sql_constraints = [
        ("canary_positive", "CHECK (canary_count >= 0)", "The canary count cannot be negative."),
        ("concurrency_positive", "CHECK (concurrency >= 1)",
         "At least one update must be allowed to run."),
        ("window_hours", "CHECK (window_start >= 0 AND window_start <= 24 AND window_end >= 0 "
                         "AND window_end <= 24)", "Window hours run from 0 to 24."),
    ]

    @api.depends("line_ids.state")
    def _compute_counts(self):
        for campaign in self:
            states = campaign.line_ids.mapped("state")
            campaign.line_count = len(states)
            campaign.done_count = states.count("done")
            campaign.skipped_count = states.count("skipped")
            campaign.failed_count = states.count("failed")
            campaign.pending_count = states.count("pending") + states.count("running")
            ended = len(states) - campaign.pending_count
            campaign.progress = 100.0 * ended / len(states) if states else 0.0

    @api.constrains("mode", "module_names")
    def _check_module_names(self):
        for campaign in self:
            names = fleet.split_modules(campaign.module_names)
            if campaign.mode == "listed" and not names:
                raise UserError(self.env._("Name the modules to update."))
            for name in names:
                try:
                    engine_modules.check_name(name)
                except ValueError as exc:
                    raise UserError(self.env._("%(name)r is not a module name.",
                                               name=name)) from exc

    # -- buttons -------------------------------------------------------------------
    def action_start(self):
        """One line per instance in scope (the first ones canaries), then run."""
        self.check_access("write")
        for campaign in self:
            if campaign.state != "draft":
                raise UserError(self.env._("%(name)s was started already.", name=campaign.name))
            instances = campaign._saas_scope_instances()
            if not instances:
                raise UserError(self.env._("No active instance is in the campaign's scope."))
            self.env["saas.update.line"].sudo().create([
                {"campaign_id": campaign.id, "instance_id": instance.id, "sequence": index,
                 "canary": index < campaign.canary_count}
                for index, instance in enumerate(instances)])
            campaign.write({"state": "running", "started_at": fields.Datetime.now()})
            campaign.message_post(body=self.env._(
                "Started by %(user)s on %(count)s instances.", user=self.env.user.name,
                count=len(instances)))
        self._saas_wake()
        return True

    def action_pause(self):
        self._saas_move(("running",), "paused", self.env._(
            "Paused by %(user)s.", user=self.env.user.name))
        return True

    def action_resume(self):
        """Go on; a stopped campaign's failed canary stays failed (and its instance
        skipped until cleared): the next lines run."""
        self._saas_move(("paused", "stopped"), "running", self.env._(
            "Resumed by %(user)s.", user=self.env.user.name))
        self.line_ids.filtered(lambda line: line.canary and line.state == "failed").sudo().write(
            {"canary": False})
        self._saas_wake()
        return True

    def action_cancel(self):
        """Lines not started are cancelled; running updates end (and roll back if they
        fail) on their own."""
        self._saas_move(("draft", "running", "paused", "stopped"), "cancelled",
                        self.env._("Cancelled by %(user)s.", user=self.env.user.name))
        self.line_ids.filtered(lambda line: line.state == "pending").sudo().write(
            {"state": "cancelled"})
        for campaign in self:
            campaign._saas_finish_if_ended()
        return True

    def _saas_move(self, from_states, to_state, message):
        self.check_access("write")
        if self.filtered(lambda c: c.state not in from_states):
            raise UserError(self.env._("Not possible in the campaign's current state."))
        self.write({"state": to_state})
        for campaign in self:
            campaign.message_post(body=message)

    # -- scope -----------------------------------------------------------------------
    def _saas_scope_instances(self):
        self.ensure_one()
        domain = [("state", "=", "active")]
        if self.scope == "template":
            domain.append(("template_id", "in", self.template_ids.ids))
        elif self.scope == "plan":
            domain.append(("plan_id", "in", self.plan_ids.ids))
        elif self.scope == "selection":
            domain.append(("id", "in", self.instance_ids.ids))
        instances = self.env["saas.instance"].sudo().search(domain, order="id")
        if self.mode == "revision":
            instances = instances.filtered(
                lambda i: i.template_revision < i.template_id.revision)
        return instances

    def _saas_params(self, instance):
        """What the update operation of ``instance`` is asked to do."""
        params = {"campaign_id": self.id}
        if self.mode == "listed":
            params["modules"] = fleet.split_modules(self.module_names)
        elif self.mode == "revision":
            template = instance.template_id
            params.update(install=template.module_list(), revision=template.revision)
        return params

    # -- the cron ------------------------------------------------------------------------
    @api.model
    def _cron_advance(self):
        """Advance each running campaign; one that fails is logged and left for the
        next run, never stopping the others."""
        for campaign in self.search([("state", "=", "running")]):
            try:
                with self.env.cr.savepoint():
                    campaign._saas_advance()
            except Exception:  # the next run tries again; the others go on
                _logger.exception("Update campaign %s could not be advanced", campaign.id)
            self._commit()

    def _saas_advance(self):
        """Start what may start now (canaries first, concurrency, window), stop on a
        failed canary, finish when every line has ended."""
        self.ensure_one()
        if self.state != "running":
            return
        lines = self.line_ids.sorted("sequence")
        in_window = self._saas_in_window()
        while True:  # lines skipped at once free their place for the next ones
            start, stop = fleet.next_batch(
                [fleet.Line(line.id, line.canary, line.state) for line in lines],
                self.concurrency)
            if stop:
                self.write({"state": "stopped"})
                self.message_post(body=self.env._(
                    "Stopped: a canary instance failed. Look at it, then Resume or Cancel."))
                return
            if not (start and in_window):
                break
            for line in lines.browse(start):
                line._saas_start()
        self._saas_finish_if_ended()

    def _saas_in_window(self):
        now = pytz.utc.localize(fields.Datetime.now()).astimezone(pytz.timezone(self.tz))
        return fleet.in_window(now.hour + now.minute / 60, self.window_start, self.window_end)

    def _saas_finish_if_ended(self):
        if self.state not in ("running", "cancelled") or any(
                line.state not in fleet.ENDED_LINE_STATES for line in self.line_ids):
            return
        report = self._saas_report()
        values = {"report": report, "ended_at": fields.Datetime.now()}
        if self.state == "running":
            values["state"] = "done"
        self.write(values)
        self.message_post(body=report)

    def _saas_report(self):
        """Counts, per-instance durations (p50, p95) and the failures, as HTML."""
        lines = self.line_ids
        seconds = [line.seconds for line in lines if line.state == "done"]
        rows = [self.env._("Updated: %(n)s", n=self.done_count),
                self.env._("Skipped: %(n)s", n=self.skipped_count),
                self.env._("Failed: %(n)s", n=self.failed_count),
                self.env._("Cancelled: %(n)s", n=len(lines.filtered(
                    lambda line: line.state == "cancelled")))]
        if seconds:
            rows.append(self.env._("Per updated instance: p50 %(p50).1f s, p95 %(p95).1f s",
                                   p50=fleet.percentile(seconds, 50),
                                   p95=fleet.percentile(seconds, 95)))
        failures = [self.env._("%(name)s: %(error)s", name=line.instance_id.name,
                               error=line.error or "-")
                    for line in lines if line.state == "failed"]
        items = Markup().join(Markup("<li>%s</li>") % row for row in rows + failures)
        return Markup("<p>%s</p><ul>%s</ul>") % (self.env._("Campaign report"), items)

    def _saas_notify(self):
        """Open forms of the campaign reload (``saas_live_reload``)."""
        self.env["bus.bus"]._sendone(
            self.env.ref("saas_manager.group_saas_user"), BUS_TYPE,
            {"model": self._name, "id": self.id, "state": self.state})

    def _saas_wake(self):
        self.env.ref(CRON).sudo()._trigger()

    def action_view_lines(self):
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": "saas.update.line",
                "name": self.name, "view_mode": "list,form",
                "domain": [("campaign_id", "=", self.id)]}
