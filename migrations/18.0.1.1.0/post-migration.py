"""18.0.1.1.0: operations and servers as records.

* Everything already made lives on the local server, and every template
  locked before deployments existed gets its home deployment.

* The two crons that ran provisioning and template builds are replaced by the
  operation runner: they are removed (they would call methods that are gone).
* Work that was queued or running under the old crons becomes operations, so
  the runner picks it up.
* The final backups of terminated instances, which earlier versions kept as
  two paths on the instance, become ``saas.backup`` records (with the sizes
  and checksums the files have now).
* The "instance ready" mail template (``noupdate``) of earlier versions
  printed a password field that no longer exists: it is reset from the
  module's data.
* Columns of removed fields, which Odoo leaves behind, are dropped: the
  per-instance provisioning fields (now on the operation and its steps), the
  health history string (now saas.health.check records), the template's build
  log (now the operation's log) and the encrypted customer
  password of versions before the welcome link (never to be kept).
"""

import os
import re
import tarfile
from datetime import datetime

from psycopg2 import sql

from odoo import SUPERUSER_ID, api
from odoo.addons.saas_manager.engine import backup

OLD_CRONS = ("ir_cron_saas_provision", "ir_cron_saas_template_build")
OLD_COLUMNS = {
    "saas_instance": ("provision_step", "provision_timings", "provision_seconds",
                      "last_error", "admin_password_encrypted", "health_history",
                      "backup_dump_path", "backup_filestore_path"),
    "saas_template": ("build_log",),
}


def migrate(cr, version):
    if not version:
        return
    _put_on_local_server(cr)
    _record_old_final_backups(cr)
    _reset_ready_mail(cr)
    _remove_old_crons(cr)
    _queue_open_work(cr)
    for table, columns in OLD_COLUMNS.items():
        for column in columns:
            cr.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                sql.Identifier(table), sql.Identifier(column)))


def _put_on_local_server(cr):
    env = api.Environment(cr, SUPERUSER_ID, {})
    local = env["saas.server"]._local()
    # In SQL: the ORM refuses to move a provisioned instance (it is not moved, only named).
    cr.execute("UPDATE saas_instance SET server_id = %s WHERE server_id IS NULL", [local.id])
    cr.execute("UPDATE saas_template SET server_id = %s WHERE server_id IS NULL", [local.id])
    env.invalidate_all()
    templates = env["saas.template"].with_context(active_test=False).search(
        [("state", "=", "ready")])
    templates._saas_sync_home_deployment()


def _record_old_final_backups(cr):
    cr.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'saas_instance' "
               "AND column_name = 'backup_dump_path'")
    if not cr.fetchone():
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    cr.execute("SELECT id, backup_dump_path, backup_filestore_path, terminated_on "
               "FROM saas_instance WHERE backup_dump_path IS NOT NULL")
    for instance_id, dump, archive, terminated_on in cr.fetchall():
        found = re.search(r"-(\d{8}T\d{6}Z)\.dump\Z", dump or "")
        stamp = (datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ") if found
                 else terminated_on)
        instance = env["saas.instance"].browse(instance_id)
        env["saas.backup"].sudo().create({
            "source": "instance", "instance_id": instance_id, "kind": "final",
            "database_name": instance.database_name, "stamp": stamp,
            "dump_path": dump, "filestore_path": archive or "",
            **_file_facts("dump", dump), **_file_facts("filestore", archive),
            "file_count": _archive_members(archive)})


def _file_facts(prefix, path):
    if not path or not os.path.isfile(path):
        return {}
    size, digest = backup.file_digest(path)
    return {"%s_size" % prefix: size, "%s_sha256" % prefix: digest}


def _archive_members(path):
    if not path or not os.path.isfile(path):
        return 0
    with tarfile.open(path, "r:gz") as tar:
        return sum(1 for member in tar if member.isreg())


def _reset_ready_mail(cr):
    env = api.Environment(cr, SUPERUSER_ID, {})
    template = env.ref("saas_manager.mail_template_instance_ready", raise_if_not_found=False)
    if template:
        template.reset_template()


def _remove_old_crons(cr):
    cr.execute("SELECT res_id FROM ir_model_data WHERE module = 'saas_manager' "
               "AND model = 'ir.cron' AND name IN %s", [OLD_CRONS])
    cron_ids = [row[0] for row in cr.fetchall()]
    if cron_ids:
        cr.execute("SELECT ir_actions_server_id FROM ir_cron WHERE id IN %s", [tuple(cron_ids)])
        action_ids = tuple(row[0] for row in cr.fetchall())
        cr.execute("DELETE FROM ir_cron WHERE id IN %s", [tuple(cron_ids)])
        cr.execute("DELETE FROM ir_act_server WHERE id IN %s", [action_ids])
    cr.execute("DELETE FROM ir_model_data WHERE module = 'saas_manager' AND name IN %s",
               [OLD_CRONS])


def _queue_open_work(cr):
    cr.execute("""
        INSERT INTO saas_operation (kind, instance_id, server_id, state, attempt, max_attempts,
                                    requested_by, create_uid, write_uid, create_date,
                                    write_date)
        SELECT 'provision', id, server_id, 'queued', 0, 5, 1, 1, 1, now() AT TIME ZONE 'UTC',
               now() AT TIME ZONE 'UTC'
          FROM saas_instance WHERE state = 'provisioning'""")
    cr.execute("""
        INSERT INTO saas_operation (kind, template_id, server_id, state, attempt, max_attempts,
                                    requested_by, create_uid, write_uid, create_date,
                                    write_date)
        SELECT CASE WHEN build_mode = 'update' THEN 'refresh' ELSE 'build' END, id, server_id,
               'queued', 0, 5, 1, 1, 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
          FROM saas_template WHERE state = 'building'""")
