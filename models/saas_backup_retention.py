"""Retention: which backups are deleted, when, and how (files first, off-site too).

Rules (CONFIGURATION.md, "Backups"):

* **Scheduled** backups of an instance follow its plan's grandfather-father-son
  retention (``engine/retention.py``: every backup of the last 24 hours, the
  newest of each of the last N days, weeks and months that have one).
* **Manual** and **before-an-operation** backups, and backups of templates,
  end on their ``expires_on`` (the kind's days setting).
* **Final** backups of terminated instances end on their ``expires_on``
  (default 90 days), and every other backup of that instance with them: the
  data-protection promise is that a terminated customer's data is gone after
  that many days.
* The newest verified backup of an instance that still has a database is
  never deleted, whatever the rules say.

A backup is deleted files first: local files, then the off-site copies; the
record goes only when both are gone, so an unreachable object store leaves
the record (and is tried again next hour) instead of forgetting a copy.
An instance with an operation running is skipped this time (its target lock
is taken without waiting), and a backup an open operation will read (a
restore, a drill, a restore as a new instance) is never deleted.
"""

import logging

from odoo import api, fields, models

from ..engine import retention
from .saas_operation import LOCK_KEYS

_logger = logging.getLogger(__name__)

#: Instance states with a database (their newest verified backup is never deleted).
LIVE_STATES = ("active", "suspended")


class SaasBackup(models.Model):
    _inherit = "saas.backup"

    @api.model
    def _cron_prune(self):
        """Delete what retention no longer keeps; returns how many backups went."""
        now = fields.Datetime.now()
        deleted = 0
        Instance = self.env["saas.instance"].sudo().with_context(active_test=False)
        for instance in Instance.search([("backup_ids", "!=", False)]):
            if not self._saas_try_lock(instance):
                continue
            deleted += instance.sudo().backup_ids._saas_prunable(instance, now)._saas_delete()
            self._commit()
        templates = self.sudo().search([("source", "=", "template"),
                                        ("expires_on", "<", fields.Date.to_date(now)),
                                        ("id", "not in", self._saas_in_use_ids())])
        deleted += templates._saas_delete()
        return deleted

    def _saas_try_lock(self, instance):
        """The instance's operation lock, until this transaction ends; False when busy."""
        self.env.cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)",
                            [LOCK_KEYS["saas.instance"], instance.id])
        return self.env.cr.fetchone()[0]

    def _saas_prunable(self, instance, now):
        """Of ``self`` (all the backups of ``instance``), those retention lets go."""
        today = fields.Date.to_date(now)
        newest_first = self.sorted(lambda b: (b.stamp, b.id), reverse=True)
        final = newest_first.filtered(lambda b: b.kind == "final")[:1]
        if instance.state == "terminated" and final.expires_on and final.expires_on < today:
            return self
        expired = self.filtered(lambda b: b.kind != "scheduled" and b.expires_on
                                and b.expires_on < today)
        scheduled = self.filtered(lambda b: b.kind == "scheduled")
        doomed_ids = retention.prune(
            [retention.Item(b.id, b.stamp, bool(b.verified_at)) for b in scheduled],
            instance.plan_id._saas_retention_policy(), now)
        doomed = expired | self.browse(doomed_ids)
        if instance.state in LIVE_STATES:
            doomed -= newest_first.filtered("verified_at")[:1]
        return doomed - self.browse(self._saas_in_use_ids())

    def _saas_delete(self):
        """Delete the files (local, then off-site), then the records; a backup whose files
        cannot be deleted stays, with the reason logged.  Returns how many went."""
        gone = self.browse()
        for backup in self:
            try:
                backup._saas_remove_local_files()
                backup._saas_remove_offsite()
            except OSError as exc:
                _logger.error("Backup %s not deleted: %s", backup.display_name, exc)
                continue
            gone |= backup
        for instance in gone.instance_id:
            instance.message_post(body=self.env._(
                "Retention deleted %(count)s backup(s): %(names)s.",
                count=len(gone.filtered(lambda b, i=instance: b.instance_id == i)),
                names=", ".join(gone.filtered(lambda b, i=instance: b.instance_id == i)
                                .mapped("display_name"))))
        gone.sudo().unlink()
        return len(gone)
