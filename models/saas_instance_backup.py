"""Backups of an instance's database: the schedule, "Back up now", and the operations.

Scheduled backups: every ``plan.backup_interval_hours`` (0 = none) for
active instances (a suspended database does not change: its last backup
stays current).  Each instance has a fixed time within the period, derived
from its database name (``engine/schedule.py``), so that a thousand daily
backups are spread over the day instead of all starting at midnight; each
run of the schedule queues at most ``saas.backup_schedule_batch`` of them,
most overdue first, and the backup runner takes them one at a time.
"""

import secrets

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..engine import backup as engine_backup
from ..engine import pg, schedule
from .saas_backup_drill import DRILL_DATABASE


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    backup_ids = fields.One2many("saas.backup", "instance_id", string="Backups",
                                 groups="saas_manager.group_saas_manager")
    backup_count = fields.Integer(compute="_compute_backup_info",
                                  groups="saas_manager.group_saas_manager")
    backup_size_mb = fields.Float(
        string="Backup Storage (MB)", compute="_compute_backup_info", digits=(16, 3),
        groups="saas_manager.group_saas_manager",
        help="Size of this instance's backups kept on the server (off-site copies aside).")
    last_backup_at = fields.Datetime(compute="_compute_backup_info",
                                     groups="saas_manager.group_saas_manager",
                                     string="Last Verified Backup")
    final_backup_id = fields.Many2one(
        "saas.backup", compute="_compute_backup_info",
        groups="saas_manager.group_saas_manager",
        help="The backup taken just before the database was dropped.")

    def _compute_backup_info(self):
        Backup = self.env["saas.backup"].sudo()
        stats = {instance: (count, stamp) for instance, count, stamp in Backup._read_group(
            [("instance_id", "in", self.ids), ("verified_at", "!=", False)], ["instance_id"],
            ["__count", "stamp:max"])}
        sizes = {instance: dump + archive for instance, dump, archive in Backup._read_group(
            [("instance_id", "in", self.ids), ("local_state", "=", "present")],
            ["instance_id"], ["dump_size:sum", "filestore_size:sum"])}
        for instance in self:
            count, stamp = stats.get(instance.sudo(), (0, False))
            instance.backup_count = count
            instance.last_backup_at = stamp
            instance.backup_size_mb = sizes.get(instance.sudo(), 0) / 2**20
            instance.final_backup_id = instance._saas_final_backup().id

    def _saas_final_backup(self):
        """The newest final backup of this instance (a termination's), if any."""
        self.ensure_one()
        return self.env["saas.backup"].sudo().search(
            [("instance_id", "=", self.id), ("kind", "=", "final")],
            order="stamp desc, id desc", limit=1)

    def action_view_backups(self):
        self.ensure_one()
        return self.env["saas.backup"]._saas_action([("instance_id", "=", self.id)])

    # -- schedule ------------------------------------------------------------------
    @api.model
    def _cron_schedule_backups(self, now=None):
        """Queue the scheduled backups that are due (bounded per run); returns them."""
        now = now or fields.Datetime.now()
        Operation = self.env["saas.operation"].sudo()
        waiting = Operation.search_count([("kind", "=", "backup"),
                                          ("state", "in", ("queued", "running"))])
        room = self.env["saas.settings"]._get("saas.backup_schedule_batch") - waiting
        if room <= 0:
            return self.browse()
        instances = self.sudo().search([("state", "=", "active"),
                                        ("plan_id.backup_interval_hours", ">", 0)])
        last = dict(self.env["saas.backup"].sudo()._read_group(
            [("instance_id", "in", instances.ids), ("kind", "=", "scheduled")],
            ["instance_id"], ["stamp:max"]))
        # A backup that failed in this slot waits for an operator (Retry) or the next
        # slot, instead of being queued again every run.
        failed = dict(Operation._read_group(
            [("instance_id", "in", instances.ids), ("kind", "=", "backup"),
             ("state", "=", "failed")], ["instance_id"], ["ended_at:max"]))
        due = [(instance.database_name, last.get(instance)) for instance in instances
               if all(schedule.is_due(stamp, now, instance.plan_id.backup_interval_hours * 3600,
                                      instance.database_name)
                      for stamp in (last.get(instance), failed.get(instance)))]
        by_name = {instance.database_name: instance for instance in instances}
        chosen = self.browse([by_name[key].id for key in schedule.pick(due, room)])
        for instance in chosen:
            Operation._queue(instance, "backup", {"kind": "scheduled"})
        return chosen

    # -- back up now -------------------------------------------------------------------
    def action_backup_now(self):
        """Queue a manual backup (verified, copied off-site when configured)."""
        self._check_states(("active", "suspended"), self.env._(
            "Only an active or suspended instance has a database to back up."))
        for instance in self:
            self.env["saas.operation"]._queue(instance, "backup", {"kind": "manual"})
        return True

    def _saas_op_backup(self, run):
        """The backup operation (copied off-site as it is recorded, see saas_backup.py)."""
        if self.state not in ("active", "suspended"):
            return
        kind = (run.operation.params or {}).get("kind", "manual")
        if (run.operation.params or {}).get("backup_stamp"):
            with run.step("remove partial files"):
                self._saas_remove_partial_backup(run.operation)
        with run.step("back up"):
            self._saas_backup_now(kind, run.operation)

    def _saas_op_drill(self, run):
        """A restore drill of one of this instance's backups (see saas_backup_drill.py)."""
        params = run.operation.params or {}
        if params.get("scratch"):  # a killed attempt's scratch copy
            with run.step("remove scratch copy"):
                engine_backup.discard(self._saas_pg_params(), params["scratch"],
                                      self._saas_filestore(params["scratch"]))
        backup = self.env["saas.backup"].sudo().browse(params.get("backup_id")).exists()
        if not backup:
            return
        scratch = DRILL_DATABASE % (backup.id, secrets.token_hex(4))
        run.operation.params = dict(params, scratch=scratch)  # committed with the step
        with run.step("drill"):
            backup._saas_drill(scratch)

    def _saas_backup_now(self, kind, operation=None):
        """A verified backup of the database as it is now: the ``saas.backup`` record.

        For operation handlers (a backup asked for, one taken before an
        update).  An active database is dumped while it serves its users
        (``pg_dump`` reads one consistent snapshot); a suspended one, which
        refuses connections, is opened to ``pg_dump`` only, hidden from Odoo,
        and closed again.  The ownership marker is checked first.
        """
        self.ensure_one()
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("%(name)s has no database to back up (state %(state)s).",
                                       name=self.name, state=self.state))
        name = self._owned_database_name()
        self._check_database_marker(name)
        if self.state == "active":
            return self._saas_backup_record(name, kind, operation)
        with self._saas_backup_window(name, restore=(False, False)):
            return self._saas_backup_record(name, kind, operation)

    def _saas_backup_record(self, name, kind, operation=None):
        """Back up ``name`` (which must accept connections) and record it."""
        made = self._saas_backup(name, operation)
        return self.env["saas.backup"]._saas_record(self, kind, made, operation)

    def _check_database_marker(self, name):
        """Refuse a database that does not carry this instance's ownership marker."""
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.comment(conn, name) != self._owner_marker():
                raise UserError(self.env._(
                    "%(db)s does not carry this instance's marker: it is not touched.", db=name))
