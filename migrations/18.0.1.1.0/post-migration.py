"""18.0.1.1.0: operations and servers as records.

* Everything already made lives on the local server, and every template
  locked before deployments existed gets its home deployment.

* The two crons that ran provisioning and template builds are replaced by the
  operation runner: they are removed (they would call methods that are gone).
* Work that was queued or running under the old crons becomes operations, so
  the runner picks it up.
* Columns of removed fields, which Odoo leaves behind, are dropped: the
  per-instance provisioning fields (now on the operation and its steps), the
  health history string (now saas.health.check records), the template's build
  log (now the operation's log) and the encrypted customer
  password of versions before the welcome link (never to be kept).
"""

from psycopg2 import sql

from odoo import SUPERUSER_ID, api

OLD_CRONS = ("ir_cron_saas_provision", "ir_cron_saas_template_build")
OLD_COLUMNS = {
    "saas_instance": ("provision_step", "provision_timings", "provision_seconds",
                      "last_error", "admin_password_encrypted", "health_history"),
    "saas_template": ("build_log",),
}


def migrate(cr, version):
    if not version:
        return
    _put_on_local_server(cr)
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
