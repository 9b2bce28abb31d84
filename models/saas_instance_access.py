"""Access: suspend, reactivate and terminate, the one API subscriptions call."""

from odoo import fields, models
from odoo.exceptions import UserError

from ..engine import backup, maintenance, pg

SUSPENSION_REASONS = [
    ("manual", "Suspended by the operator"),
    ("unpaid", "Unpaid invoice"),
    ("expired", "Subscription expired"),
    ("cancelled", "Subscription cancelled"),
    ("user_limit", "User limit exceeded"),
    ("storage_limit", "Storage limit exceeded"),
]
#: Reasons the limits cron lifts by itself once the instance is back under its plan.
LIMIT_REASONS = ("user_limit", "storage_limit")


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    suspension_reason = fields.Selection(SUSPENSION_REASONS, readonly=True, copy=False,
                                         tracking=True, saas_protected=True)
    suspended_on = fields.Datetime(readonly=True, copy=False, saas_protected=True)
    terminated_on = fields.Datetime(readonly=True, copy=False, saas_protected=True)

    # -- buttons ---------------------------------------------------------------------
    def action_suspend(self):
        self._check_states(("active",), self.env._("Only active instances can be suspended."))
        return self._saas_report([instance._suspend("manual") for instance in self])

    def action_reactivate(self):
        self._check_states(("suspended",), self.env._("Only suspended instances can be "
                                                      "reactivated."))
        return self._saas_report([instance._reactivate() for instance in self])

    def action_terminate(self):
        """Ask for an explicit confirmation (the subdomain, typed) before terminating."""
        self.ensure_one()
        self._check_states(("active", "suspended"),
                           self.env._("Only active or suspended instances can be terminated."))
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_instance_terminate")
        action["context"] = {"default_instance_id": self.id}
        return action

    def _saas_report(self, operations):
        """What a button shows: nothing when every operation is done, else a notification
        naming those that failed or wait (the form reloads when they end)."""
        pending = [op for op in operations if op.state != "done"]
        if not pending:
            return True
        failed = any(op.state == "failed" for op in pending)
        return {"type": "ir.actions.client", "tag": "display_notification", "params": {
            "type": "danger" if failed else "warning", "sticky": failed,
            "title": self.env._("Not done yet") if not failed else self.env._("Failed"),
            "message": "\n".join("%s: %s" % (op.display_name, op.error or op.state)
                                  for op in pending),
            "next": {"type": "ir.actions.client", "tag": "soft_reload"}}}

    # -- the API subscriptions and crons call -----------------------------------------
    def _suspend(self, reason):
        """Block the database now (see :meth:`_saas_op_suspend`); returns the operation.

        Run at once in the caller's transaction; one that cannot run now (the
        instance is busy with another operation) or fails for a reason that
        goes away by itself is left to the runner.
        """
        self.ensure_one()
        return self._saas_operation("suspend", {"reason": reason})

    def _reactivate(self):
        """Let the database accept connections again; returns the operation."""
        self.ensure_one()
        return self._saas_operation("reactivate")

    def _terminate(self):
        """Queue the termination (final verified backup, then drop); returns the operation.

        Always left to the runner, which commits after each step: the backup
        is recorded before anything is dropped.
        """
        self.ensure_one()
        return self.env["saas.operation"]._queue(self, "terminate")

    def _saas_attach_subscription(self, subscription):
        """``subscription`` becomes the current one: the plan follows it, and a suspended
        instance is given back."""
        self.sudo().write({"subscription_id": subscription.id,
                           "plan_id": subscription.plan_id.id})
        if self.state == "suspended":
            self._reactivate()

    def _saas_follow_plan(self, plan):
        """The current subscription moved to ``plan``."""
        self.sudo().plan_id = plan

    def _saas_operation(self, kind, params=None):
        operation = self.env["saas.operation"]._queue(self, kind, params, wake=False)
        if not operation._execute(inline=True):
            operation._runner()._trigger()  # busy: the runner takes it when it is free
        return operation

    # -- handlers (run by saas.operation, as superuser) ------------------------------
    def _saas_op_suspend(self, run):
        """Refuse new connections and end the sessions of the database itself.

        Nothing inside the client database is relied upon, so no change of
        the client's Odoo can bypass it; Odoo also stops listing (so routing
        to) a database that refuses connections.
        """
        reason = run.operation.params["reason"]
        if self.state == "suspended":
            if self.suspension_reason in LIMIT_REASONS and reason not in LIMIT_REASONS:
                # It now decides: lifting the limits no longer gives access back.
                # (An operator's manual suspension stays theirs to lift.)
                self.suspension_reason = reason
                self._saas_publish_suspension_page()
            return
        if self.state != "active":
            raise UserError(self.env._("%(name)s is not active.", name=self.name))
        with run.step("block"):
            self._set_connections(False)
        self.write({"state": "suspended", "suspension_reason": reason,
                    "suspended_on": fields.Datetime.now()})
        self._saas_publish_suspension_page()
        self._notify("saas_manager.mail_template_instance_suspended")

    def _saas_op_reactivate(self, run):
        if self.state != "suspended":
            raise UserError(self.env._("%(name)s is not suspended.", name=self.name))
        with run.step("unblock"):
            self._set_connections(True)
        self._saas_withdraw_suspension_page()
        values = {"state": "active", "suspension_reason": False, "suspended_on": False}
        if self.suspension_reason in LIMIT_REASONS:
            # A fresh grace period to get back under the limit.
            values["limit_exceeded_since"] = fields.Date.context_today(self)
        self.write(values)
        self._notify("saas_manager.mail_template_instance_reactivated")

    def _set_connections(self, allowed):
        """Allow or refuse connections; refusing also ends every session.

        A session that cannot be ended (another role's) fails the suspension
        and connections are allowed again: the instance stays active as it
        was, rather than half blocked.
        """
        name = self._owned_database_name()
        if not allowed:
            self._saas_release(name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.allow_connections(conn, name, allowed)
            if not allowed:
                try:
                    pg.terminate_sessions(conn, name)
                except pg.PgError:
                    pg.allow_connections(conn, name, True)
                    raise

    def _owned_database_name(self):
        """The database of this instance, refusing one this module did not create."""
        name = self.sudo().owned_database
        if not name or name != self.database_name:
            raise UserError(self.env._(
                "%(name)s has no database created by SaaS Manager.", name=self.name))
        return name

    def _saas_op_terminate(self, run):
        """Final verified backup, then remove database, filestore and proxy file.

        The record stays (state terminated), its final backup a ``saas.backup``
        record.  A failed backup or drop raises and leaves the database as it
        was.  The backup record is committed before the drop (outside tests):
        if the worker dies after the drop, the next attempt finds the database
        gone and completes with that record, once its files are checked.
        """
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("%(name)s cannot be terminated from state %(state)s.",
                                       name=self.name, state=self.state))
        final = self._saas_final_backup()
        exists = self._database_exists(self.database_name)
        if not exists and not final:
            raise UserError(self.env._(
                "%(db)s no longer exists and no final backup of it is recorded: the "
                "termination stops here.", db=self.database_name))
        if not exists:
            with run.step("backup"):
                self._check_earlier_backup(final)
            with run.step("drop"):
                self._provision_remove_database()  # what the earlier attempt left (files)
        else:
            name = self._owned_database_name()
            self._check_database_marker(name)  # before anything changes
            # Hidden from Odoo from the backup to the drop; a failed drop gives the
            # database its flags back (the window ends with the database gone otherwise).
            with self._saas_backup_window(name, restore=(self.state == "active", False)):
                with run.step("backup"):
                    self._final_backup(name, run.operation)
                    self._commit()
                with run.step("drop"):
                    self._provision_remove_database()
        with run.step("proxy"):
            self._provision_remove_proxy()
            self._saas_withdraw_suspension_page()
            maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        self.write({"state": "terminated", "terminated_on": fields.Datetime.now(),
                    "health_status": "unknown"})
        self.subscription_ids._saas_instance_terminated()
        self._notify("saas_manager.mail_template_instance_terminated")

    def _final_backup(self, name, operation=None):
        """Dump and filestore archive of ``name``, both read back: the final
        ``saas.backup``.  The caller has opened the database to pg_dump (see
        ``_saas_backup_window``)."""
        return self._saas_backup_record(name, "final", operation)

    def _check_earlier_backup(self, final):
        """The database is gone (an earlier attempt dropped it): its final backup must
        still be there, as it was written, before the termination completes."""
        try:
            final._saas_verify()
        except backup.BackupError as exc:
            raise UserError(self.env._(
                "%(db)s no longer exists and its final backup %(backup)s cannot be relied "
                "upon: %(reason)s Nothing more is removed; find the backup files (see "
                "CONFIGURATION.md, Termination and backups) before trying again.",
                db=self.database_name, backup=final.display_name, reason=exc)) from exc

    def _database_exists(self, name):
        with pg.maintenance(self._saas_pg_params()) as conn:
            return pg.exists(conn, name)
