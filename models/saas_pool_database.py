"""``saas.pool.database``: a standby client database, cloned and sanitized in advance.

A template deployment keeps ``pool_size`` of them so that a signup gets its
Odoo by a rename instead of a clone (see ``saas_instance_pool``).  While
pooled, a database is invisible to Odoo twice over: it is flagged
``IS_TEMPLATE`` (Odoo lists, and so serves, no template database) and its
name (``saas_pool_<deployment>_<random>``) is no host any ``dbfilter``
admits.  Its administrator is a placeholder login without password.

States: *filling* (recorded before the database is created: a killed fill
leaves a row the next fill removes), *ready* (may be claimed), *claimed*
(an instance is renaming it; the row goes when the claim commits, or the
next fill removes what a killed claim left).
"""

import re

from odoo import fields, models

#: Name of a standby database (deployment id, random), checked before it reaches SQL.
POOL_DATABASE = "saas_pool_%d_%s"
POOL_DATABASE_RE = re.compile(r"saas_pool_\d+_[0-9a-f]{8}")
#: The placeholder administrator login of a standby database.
PLACEHOLDER_LOGIN = "standby-%s@pool.invalid"
#: The base URL a standby database carries until it is claimed (never served).
POOL_URL = "https://pool.invalid"


class SaasPoolDatabase(models.Model):
    _name = "saas.pool.database"
    _description = "SaaS Standby Database"
    _order = "id"
    _rec_name = "database_name"

    deployment_id = fields.Many2one("saas.template.deployment", required=True, index=True,
                                    ondelete="restrict", readonly=True)
    template_id = fields.Many2one(related="deployment_id.template_id", store=True)
    server_id = fields.Many2one(related="deployment_id.server_id", store=True)
    database_name = fields.Char(required=True, readonly=True)
    placeholder_login = fields.Char(required=True, readonly=True)
    revision = fields.Integer(readonly=True, help="The template revision it was cloned from.")
    currency_code = fields.Char(readonly=True, help="The currency of its company.")
    state = fields.Selection([("filling", "Being Made"), ("ready", "Ready"),
                              ("claimed", "Being Claimed")],
                             required=True, default="filling", readonly=True)
    instance_id = fields.Many2one("saas.instance", readonly=True, ondelete="set null",
                                  help="The instance claiming it.")

    _sql_constraints = [("database_name_uniq", "unique(database_name)",
                         "A standby database name is used once.")]

    def _lock_free(self):
        """The records of ``self`` whose rows no other transaction holds, now locked."""
        if not self:
            return self
        self.env.cr.execute("SELECT id FROM saas_pool_database WHERE id IN %s "
                            "FOR UPDATE SKIP LOCKED", [tuple(self.ids)])
        return self.browse([row[0] for row in self.env.cr.fetchall()])
