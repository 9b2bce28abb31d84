"""Servers arrive: everything already made lives on the local server, and every
template locked before deployments existed gets its home deployment."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    local = env["saas.server"]._local()
    # In SQL: the ORM refuses to move a provisioned instance (it is not moved, only named).
    cr.execute("UPDATE saas_instance SET server_id = %s WHERE server_id IS NULL", [local.id])
    cr.execute("UPDATE saas_template SET server_id = %s WHERE server_id IS NULL", [local.id])
    env.invalidate_all()
    templates = env["saas.template"].with_context(active_test=False).search(
        [("state", "=", "ready")])
    templates._saas_sync_home_deployment()
