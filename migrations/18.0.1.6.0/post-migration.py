"""18.0.1.6.0: template databases are named like hosts (``tpl-<code>.<base domain>``, or
``tpl-<code>`` with subdomain routing), so that Open Template reaches them.  A template
not built yet (draft, or failed before it made its database) that still has the old
default name ``saas_tpl_<code>`` takes the new name; it keeps the old one when no base
domain is set or the new name is taken (logged); a built template keeps its database
(renaming it would break its clones' records and its pool).  Open incidents remember
their to-do by id from now on: the to-dos of those opened before are found by summary,
as they were matched until then."""

import logging

from odoo import SUPERUSER_ID, api
from odoo.addons.saas_manager.engine import naming

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    _rename_unbuilt_templates(env)
    _link_incident_todos(env)


def _rename_unbuilt_templates(env):
    Template = env["saas.template"].with_context(active_test=False)
    for template in Template.search([("state", "in", ("draft", "error")),
                                     ("database_owned", "=", False)]):
        if template.database_name != "saas_tpl_%s" % template.code:
            continue
        try:
            template.database_name = Template._saas_derived_database_name(template.code)
        except naming.NamingError as exc:  # no base domain, or the name is taken
            _logger.info("Template %s keeps its database name %s: %s", template.code,
                         template.database_name, exc)


def _link_incident_todos(env):
    for incident in env["saas.incident"].search([("state", "=", "open")]):
        incident.activity_id = env["mail.activity"].search(
            [("res_model", "=", incident.res_model), ("res_id", "=", incident.res_id),
             ("summary", "=", incident.name[:200])], limit=1)
