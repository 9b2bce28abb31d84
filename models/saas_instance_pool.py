"""Provisioning from the standby pool: a rename instead of a clone.

A provisioning asked with ``{"pool": True}`` (the signup does) takes a ready
standby database of the instance's template deployment (same revision, same
company currency as the plan) and runs the steps ``claim``, ``proxy``
instead of clone, filestore, sanitize, customize.  The claim:

1. marks the standby *claimed* by this instance and records, committed,
   the pending name the instance will own (``saas_tmp_<id>_<random>``);
2. renames the standby database to that pending name (``ALTER DATABASE ...
   RENAME`` needs no connection: nobody is connected to a hidden database);
3. writes the customer's identity in SQL (``sanitize.claim``);
4. marks it as this instance's, renames it to its final name, records that;
5. moves its filestore to the final name and makes it visible to Odoo.

A crash after 1 is handled by provisioning's own recovery (a pending or
marked database of the instance is removed) and by the next pool fill (a
claimed standby whose instance is no longer provisioning is removed).  When
no standby is ready, or the claim fails before the rename, the same attempt
goes on with the normal clone steps: a pool miss only costs time.
"""

import logging
import os
import secrets

import psycopg2

from odoo import models

from ..engine import filestore, pg, sanitize
from .saas_instance_provisioning import PENDING_DATABASE

_logger = logging.getLogger(__name__)


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    def _pool_take(self):
        """A ready standby for this instance, row-locked (SKIP LOCKED: two signups never
        wait for each other), or an empty recordset."""
        deployment = self.template_id._saas_deployment(self.server_id)
        if deployment.state != "ready" or self.template_id.state != "ready":
            return self.env["saas.pool.database"]
        self.env.cr.execute("""
            SELECT id FROM saas_pool_database
             WHERE deployment_id = %s AND state = 'ready' AND revision = %s
               AND currency_code = %s
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED""",
                            (deployment.id, deployment.revision, self.plan_id.currency_id.name))
        row = self.env.cr.fetchone()
        return self.env["saas.pool.database"].sudo().browse(row and row[0])

    def _provision_claim(self, attempt):
        member = attempt.member
        target = self._provision_names()["database"]
        pending = PENDING_DATABASE % (self.id, secrets.token_hex(4))
        if os.path.exists(self._saas_filestore(target)):
            attempt.member = None  # the clone step refuses it with the full message
            return
        member.write({"state": "claimed", "instance_id": self.id})
        self._provision_mark_owned(pending)  # commits: the claim is recorded
        attempt.undo.append(self._provision_remove_database)
        try:
            with pg.maintenance(self._saas_pg_params()) as conn:
                if pg.exists(conn, target):
                    raise pg.PgError("%s exists" % target)
                pg.rename(conn, member.database_name, pending)
        except pg.PgError as exc:
            _logger.info("Instance %s: standby %s not claimed (%s): cloning instead",
                         self.id, member.database_name, exc)
            member.write({"state": "ready", "instance_id": False})
            self._provision_mark_owned(False)
            attempt.undo.remove(self._provision_remove_database)
            attempt.member = None
            return
        self._claim_identity(pending, member)
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.set_comment(conn, pending, self._owner_marker())
            pg.rename(conn, pending, target)
            self.sudo().write({"template_revision": member.revision,
                               "template_built_at": self.template_id.built_at,
                               "admin_login": self._admin_login()})
            source = member.database_name
            member.unlink()
            self._provision_mark_owned(target)
            filestore.move_tree(self._saas_filestore(source), self._saas_filestore(target))
            os.makedirs(self._saas_filestore(target), exist_ok=True)
            pg.mark_template(conn, target, False)  # Odoo may serve it now
        self.env["saas.operation"]._queue(self.template_id, "pool_fill")

    def _claim_identity(self, database, member):
        partner = self.partner_id.commercial_partner_id
        conn = psycopg2.connect(dbname=database, **self._saas_pg_params())
        try:
            sanitize.claim(conn, self.url, placeholder=member.placeholder_login,
                           login=self._admin_login(),
                           company={"name": partner.name, "email": partner.email},
                           admin={"name": self.partner_id.name, "email": self.partner_id.email,
                                  "lang": self.partner_id.lang,
                                  "tz": self.partner_id.tz or self.env.user.tz})
        finally:
            conn.close()
