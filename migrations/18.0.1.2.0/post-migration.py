"""18.0.1.2.0: scheduled backups, retention, drills and off-site copies.

* The seed plans get the backup frequency their cards promise (Professional
  every 12 hours, Enterprise every 6; the others keep the daily default).
* Existing backups are on the server they were taken on (the local one, the
  only one before) and their files have been local since they were verified.
* Scheduled backups follow their plan's retention now: the old days setting
  for them is removed.
"""

from odoo import SUPERUSER_ID, api

PLAN_INTERVALS = {"professional": 12, "enterprise": 6}


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    for code, hours in PLAN_INTERVALS.items():
        cr.execute("UPDATE saas_plan SET backup_interval_hours = %s "
                   "WHERE code = %s AND backup_interval_hours = 24", (hours, code))
    local = env["saas.server"]._local()
    cr.execute("UPDATE saas_backup SET server_id = %s WHERE server_id IS NULL", (local.id,))
    cr.execute("UPDATE saas_backup SET local_since = verified_at WHERE local_since IS NULL")
    env["ir.config_parameter"].search(
        [("key", "=", "saas.backup_scheduled_retention_days")]).unlink()
