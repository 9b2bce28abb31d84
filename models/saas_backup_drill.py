"""Restore drills: a backup is proven restorable by restoring it.

Each week the drill cron picks a random sample of instance backups
(``saas.backup_drill_sample``, at least one; never drilled ones first) and
queues a *drill* operation for each, on the backup runner.  The drill
restores the backup into a scratch database and directory (fetched from
off-site first when the local files are gone), compares the row count of
every table and the number of files with what was recorded when the backup
was taken, and always drops the scratch copy.  The result is kept on the
backup; a failure is posted on the instance and given to its responsible
operator as a to-do.
"""

import random

from odoo import api, fields, models

from ..engine import backup as engine_backup
from ..engine import offsite

#: Scratch database of a drill: backup id, random (test_cmd's cleanup knows the pattern).
DRILL_DATABASE = "saas_drill_%d_%s"
#: Backup kinds drilled (a final backup is drilled before it is relied on anyway).
DRILLED_KINDS = ("scheduled", "manual", "before_operation", "final")


class SaasBackup(models.Model):
    _inherit = "saas.backup"

    drill_state = fields.Selection([("passed", "Passed"), ("failed", "Failed")],
                                   string="Drill", readonly=True, index=True,
                                   saas_protected=True)
    drill_at = fields.Datetime(string="Drilled", readonly=True, saas_protected=True)
    drill_report = fields.Text(readonly=True, saas_protected=True)

    @api.model
    def _cron_drill(self):
        """Queue a drill of a random sample of verified instance backups."""
        sample = max(1, self.env["saas.settings"]._get("saas.backup_drill_sample"))
        candidates = self.sudo().search([("source", "=", "instance"),
                                         ("verified_at", "!=", False),
                                         ("kind", "in", DRILLED_KINDS)])
        never = candidates.filtered(lambda b: not b.drill_at)
        pool = never if len(never) >= sample else candidates
        chosen = random.SystemRandom().sample(list(pool), min(sample, len(pool)))
        for backup in chosen:
            backup._saas_queue_drill()
        return self.browse([b.id for b in chosen])

    def _saas_queue_drill(self):
        self.ensure_one()
        return self.env["saas.operation"]._queue(self.instance_id, "drill",
                                                 {"backup_id": self.id})

    def action_drill(self):
        """Drill this backup now (queued on the backup runner)."""
        for backup in self:
            backup.check_access("read")
            backup.instance_id.check_access("write")
            backup._saas_queue_drill()
        return True

    def _saas_drill(self, scratch):
        """Restore into the scratch database ``scratch``, compare, drop it; record and return
        the report."""
        self.ensure_one()
        try:
            made = self._saas_local_copy(verify=False)
        except offsite.OffsiteUnreachable:
            raise  # the store, not the backup: the operation is retried
        except (offsite.OffsiteError, OSError) as exc:
            report = engine_backup.DrillReport(ok=False, problems=[str(exc)])
        else:
            report = engine_backup.drill(self._saas_pg_params(), made, scratch,
                                         self._saas_filestore(scratch))
        self.sudo().write({"drill_state": "passed" if report.ok else "failed",
                           "drill_at": fields.Datetime.now(),
                           "drill_report": self._saas_drill_text(report)})
        if not report.ok:
            self._saas_drill_alert()
        else:
            self.env["saas.incident"]._saas_resolve("drill", self.instance_id, self.env._(
                "Backup %(backup)s passed its restore drill.", backup=self.display_name))
        return report

    def _saas_drill_text(self, report):
        if report.ok:
            text = self.env._(
                "Restored and compared: %(tables)s tables, %(rows)s rows, %(files)s files, "
                "identical to the backup's record (%(sec).1f s).", tables=report.tables,
                rows=report.rows, files=report.files, sec=report.seconds)
        else:
            text = self.env._("The restore does not match the backup: %(problems)s",
                              problems="; ".join(report.problems))
        return "\n".join([text, *getattr(report, "notes", [])])

    def _saas_drill_alert(self):
        """In the instance's chatter, and an incident: a backup that does not restore
        is a problem until a later drill passes."""
        instance = self.instance_id
        summary = self.env._("Backup %(backup)s failed its restore drill",
                             backup=self.display_name)
        instance.message_post(body=self.env._("%(summary)s: %(report)s", summary=summary,
                                              report=self.drill_report))
        self.env["saas.incident"]._saas_open("drill", instance, summary, self.drill_report)
