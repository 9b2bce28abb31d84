"""A template's standby pool: databases cloned and sanitized ahead of any signup.

The pool of the template's home deployment is filled by a ``pool_fill``
operation on the template (so it runs after a build or refresh of that
template, never beside one), queued when the template is locked, when its
pool size changes and after each claim.  A fill first removes what must not
be handed out (databases of an older revision, of a deployment that is not
ready, and what killed fills and claims left), then clones until the pool is
full or the runner's time budget is spent.
"""

import secrets
import time

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..engine import filestore, pg, sanitize
from .saas_pool_database import PLACEHOLDER_LOGIN, POOL_DATABASE, POOL_DATABASE_RE, POOL_URL

#: A fill stops starting new clones after this many seconds (the runner's budget is 240).
FILL_BUDGET = 120
#: A new template keeps no standby; the seed templates keep one (see CONFIGURATION.md).
DEFAULT_POOL_SIZE = 0
MAX_POOL_SIZE = 100


class SaasTemplate(models.Model):
    _inherit = "saas.template"

    pool_size = fields.Integer(
        string="Standby Pool", default=DEFAULT_POOL_SIZE, tracking=True,
        help="Databases kept cloned and sanitized in advance, so that a signup gets its "
             "Odoo at once (each costs the template's disk size, no memory). 0 = none.")
    pool_ids = fields.One2many("saas.pool.database", "template_id", string="Standby Databases",
                               readonly=True)
    pool_ready_count = fields.Integer(string="Standby Ready", compute="_compute_pool_ready")
    signup_offered = fields.Boolean(
        string="Offered at Sign-up", default=True,
        help="Shown as a choice on the public sign-up page while it is locked.")

    def _compute_pool_ready(self):
        counts = dict(self.env["saas.pool.database"].sudo()._read_group(
            [("template_id", "in", self.ids), ("state", "=", "ready")],
            ["template_id"], ["__count"]))
        for template in self:
            template.pool_ready_count = counts.get(template, 0)

    @api.constrains("pool_size")
    def _check_pool_size(self):
        if self.filtered(lambda t: not 0 <= t.pool_size <= MAX_POOL_SIZE):
            raise ValidationError(self.env._("A standby pool holds 0 to %(max)s databases.",
                                             max=MAX_POOL_SIZE))

    def write(self, vals):
        result = super().write(vals)
        if "pool_size" in vals:
            self.filtered(lambda t: t.state == "ready")._saas_queue_pool_fill()
        return result

    def _saas_sync_home_deployment(self):
        """A lock (a new revision) refills the pool: the old revision's databases go."""
        result = super()._saas_sync_home_deployment()
        self.filtered(lambda t: t.state == "ready")._saas_queue_pool_fill()
        return result

    def _saas_queue_pool_fill(self):
        for template in self.sudo():
            if template.pool_size or template.pool_ids:
                self.env["saas.operation"]._queue(template, "pool_fill")

    # -- the operation -------------------------------------------------------------
    def _saas_op_pool_fill(self, run):
        deployment = self._saas_deployment(self.server_id)
        with run.step("prune"):
            self._pool_prune(deployment)
        deadline = time.monotonic() + FILL_BUDGET
        while (deployment.state == "ready" and self.state == "ready"
               and self._pool_missing(deployment) and time.monotonic() < deadline):
            with run.step("fill"):
                self._pool_fill_one(deployment)

    def _pool_missing(self, deployment):
        members = self.env["saas.pool.database"].sudo().search_count(
            [("deployment_id", "=", deployment.id), ("state", "=", "ready")])
        return max(self.pool_size - members, 0)

    def _pool_prune(self, deployment):
        """Drop the standby databases that must not be handed out (see the module doc)."""
        current = deployment.state == "ready" and self.state == "ready"
        for member in self.sudo().pool_ids._lock_free():
            claimed_live = member.state == "claimed" and member.instance_id.state == "provisioning"
            stale = not current or member.revision != deployment.revision
            if member.state == "filling" or stale or (member.state == "claimed"
                                                      and not claimed_live):
                self._pool_drop(member)

    def _pool_drop(self, member):
        name = member.database_name
        if not POOL_DATABASE_RE.fullmatch(name):
            raise ValueError("not a standby database name: %r" % name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.drop(conn, name)
        filestore.remove_tree(self._saas_filestore(name))
        member.unlink()
        self.env["saas.instance"]._commit()

    def _pool_fill_one(self, deployment):
        """Clone, copy the files, sanitize with a placeholder administrator; recorded first."""
        hex_id = secrets.token_hex(4)
        name = POOL_DATABASE % (deployment.id, hex_id)
        member = self.env["saas.pool.database"].sudo().create({
            "deployment_id": deployment.id, "database_name": name,
            "placeholder_login": PLACEHOLDER_LOGIN % hex_id, "revision": deployment.revision})
        # Recorded before it exists: a killed fill leaves a row for the next prune.
        self.env["saas.instance"]._commit()
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.clone(conn, deployment.database_name, name, owner_role=self._saas_db_owner(),
                     strategy=self.env["saas.settings"]._get("saas.clone_strategy"),
                     hidden=True)
            pg.set_comment(conn, name, "saas_manager standby of %s" % self.env.cr.dbname)
        filestore.clone_tree(self._saas_filestore(deployment.database_name),
                             self._saas_filestore(name))
        conn = psycopg2.connect(dbname=name, **self._saas_pg_params())
        try:
            sanitize.sanitize(conn, POOL_URL, admin=(self.admin_login, member.placeholder_login))
            currency = sanitize.company_currency(conn)
        finally:
            conn.close()
        member.write({"state": "ready", "currency_code": currency})
        self.env["saas.instance"]._commit()

    def _saas_op_pool_fill_failed(self, operation, exc):
        """What the failed attempt left is removed by the next fill's prune."""
        self.message_post(body=self.env._("Filling the standby pool failed: %(error)s",
                                          error=str(exc)))
