"""Template builds and refreshes: a detached Odoo process, started and collected by the
operation runner.

A build of a vertical template takes minutes, more than a cron worker's time
limit allows, so the runner never waits for it: the build operation starts
the process (detached, see :mod:`..engine.odoo_process`), records its pid
and asks to be looked at again in a few seconds (the operation *waits*);
later runs, and the first run after a restart, collect its status.  A
build is stopped by "Cancel Build" or after ``saas_build_timeout`` seconds,
and one whose process vanished (killed, the machine restarted) fails
cleanly: nothing runs that no record owns.
"""

import logging
import os

from odoo import fields, models
from odoo.exceptions import UserError

from ..engine import customize, odoo_process, pg, sanitize

_logger = logging.getLogger(__name__)

#: How soon the runner looks again at a running build.
BUILD_POLL_SECONDS = 5


class SaasTemplate(models.Model):
    _inherit = "saas.template"

    build_pid = fields.Integer(
        string="Build Process", readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="The detached Odoo process building the template, while it runs.", saas_protected=True)
    build_started_at = fields.Datetime(readonly=True, copy=False, saas_protected=True)

    build_log = fields.Text(compute="_compute_build_log",
                            help="End of the last build's or refresh's log.")

    def _compute_build_log(self):
        for template in self:
            last = self.env["saas.operation"].sudo().search(
                [("template_id", "=", template.id), ("kind", "in", ("build", "refresh"))],
                order="id desc", limit=1)
            template.build_log = "\n\n".join(filter(None, [last.error, last.log_tail])) or False

    # -- actions -----------------------------------------------------------------
    def action_build(self):
        """Create Template DB: queued; the runner runs Odoo as a separate process."""
        self.check_access("write")
        for template in self:
            if template.state not in ("draft", "error"):
                raise UserError(self.env._("%(name)s is already built.", name=template.name))
        self._saas_name_database()
        self._queue_build("install")
        return True

    def action_refresh(self):
        """Update the template's modules (-u) and re-read what the database holds."""
        self.check_access("write")
        if self.filtered(lambda t: t.state != "configuring"):
            raise UserError(self.env._("Unlock the template before refreshing it."))
        self._queue_build("update")
        return True

    def action_cancel_build(self):
        """Stop a running build; an install's half-built database is removed.

        Takes the template's operation lock, so it never races the runner
        collecting the same build.
        """
        self.check_access("write")
        for template in self.sudo().filtered(lambda t: t.state == "building"):
            operation = template._build_operation()
            if operation and not operation._lock():
                raise UserError(self.env._(
                    "The build of %(name)s is being looked at right now: try again in a "
                    "moment.", name=template.name))
            try:
                # A build the runner finished after this request's snapshot makes this a
                # serialization error (the request is retried) rather than a drop of the
                # freshly built database.
                self.env.cr.execute(
                    "SELECT id FROM saas_template WHERE id = %s FOR UPDATE", [template.id])
                reason = self.env._("Cancelled by %(user)s.", user=self.env.user.name)
                template._build_failed(UserError(reason), operation)
                if operation:
                    operation.write({"state": "cancelled", "ended_at": fields.Datetime.now(),
                                     "next_run_at": False, "error": reason})
                    operation._notify_progress()
            finally:
                if operation:
                    operation._unlock()
        return True

    def _queue_build(self, mode):
        self.sudo().write({"state": "building", "build_mode": mode, "build_pid": False})
        for template in self:
            self.env["saas.operation"]._queue(
                template, "build" if mode == "install" else "refresh")

    def _build_operation(self):
        return self.env["saas.operation"].sudo().search(
            [("template_id", "=", self.id), ("kind", "in", ("build", "refresh")),
             ("state", "in", ("queued", "running"))], limit=1)

    # -- handlers (run by saas.operation) -------------------------------------------
    def _saas_op_build(self, run):
        """Start the build process, or look at it; seconds until the next look while it
        runs."""
        if self.state != "building":
            return None
        if self.build_pid:
            return self._build_collect(run)
        self._build_start(run)
        return BUILD_POLL_SECONDS

    _saas_op_refresh = _saas_op_build

    def _saas_op_build_failed(self, operation, exc):
        if operation.state == "failed":
            self._build_failed(exc, operation)

    def _saas_op_build_retried(self, operation):
        """Retry: the build starts over (a failed install removed its database)."""
        self.write({"state": "building", "build_pid": False,
                    "build_mode": "install" if operation.kind == "build" else "update"})

    def _saas_op_build_cancelled(self, operation):
        """A queued build cancelled before it started: back to where it was."""
        if self.state == "building" and not self.build_pid:
            self.state = "error" if self.build_mode == "install" else "configuring"

    _saas_op_refresh_failed = _saas_op_build_failed
    _saas_op_refresh_retried = _saas_op_build_retried
    _saas_op_refresh_cancelled = _saas_op_build_cancelled

    def _build_start(self, run):
        with run.step("prepare"):
            if self.build_mode == "install":
                self._build_prepare()
            else:
                self._check_database_exists()
        if self.build_mode == "update":
            with run.step("safety backup"):
                # A module update can fail half-way: the template as it was is kept.
                made = self._saas_backup(self.database_name)
                self.env["saas.backup"]._saas_record(self, "before_operation", made,
                                                     run.operation)
        with run.step("start"):
            paths = self._build_paths()
            python, launcher, rcfile, options, env = self._saas_odoo_child()
            args = odoo_process.command(
                python, launcher, rcfile, self.database_name,
                self.module_list() or ["base"], update=self.build_mode == "update",
                demo=self.with_demo, lang=self.lang, logfile=paths["log"], options=options)
            try:
                pid = odoo_process.start(args, paths["status"], env=env, logfile=paths["log"])
            except odoo_process.OdooProcessError as exc:
                raise UserError(str(exc)) from exc
            self.write({"build_pid": pid, "build_started_at": fields.Datetime.now()})
        _logger.info("Template %s: build process %s started", self.code, pid)

    def _build_collect(self, run):
        """Look at the running process: wait, stop it (too long), or finish the build."""
        paths = self._build_paths()
        status = odoo_process.poll(self.build_pid, paths["status"])
        elapsed = (fields.Datetime.now() - self.build_started_at).total_seconds()
        if status == odoo_process.RUNNING:
            if elapsed > self._saas_build_timeout():
                raise UserError(self.env._("The build did not end within %(sec)s s: stopped.",
                                           sec=self._saas_build_timeout()))
            return BUILD_POLL_SECONDS
        if status == odoo_process.LOST:
            raise UserError(self.env._(
                "The build process ended without a status (killed, or the server restarted "
                "under it)."))
        run.steps.append({"name": "odoo", "state": "done", "seconds": elapsed})
        log_text = odoo_process.read_log(paths["log"], paths["status"])
        run.operation.log_tail = odoo_process.tail(log_text)
        with run.step("check"):
            self._build_check(status, log_text)
        if self.build_mode == "install":
            with run.step("password"):
                self._set_admin_password()
        with run.step("inspect"):
            self._refresh_info()
        with run.step("checksums"):
            self._saas_store_checksums(self.database_name)
        self.write({"state": "configuring", "build_seconds": elapsed, "build_pid": False,
                    "built_at": fields.Datetime.now()})
        return None

    def _build_check(self, status, log_text):
        """Fail on a non-zero exit, a fatal log line or a module not installed; report
        the other ERROR lines in the chatter."""
        fatal, others = odoo_process.problems(log_text)
        if status or fatal:
            raise UserError(self.env._(
                "The Odoo build process failed (exit %(code)s): %(why)s", code=status,
                why=fatal[0] if fatal else odoo_process.tail(log_text, 500)))
        missing = set(self.module_list()) - set(self._read_installed_modules())
        if missing:
            raise UserError(self.env._(
                "Not installed after the build: %(names)s. Odoo said: %(why)s",
                names=", ".join(sorted(missing)),
                why=odoo_process.first_problem(log_text, ("WARNING", "ERROR")) or "-"))
        if others:
            self.message_post(body=self.env._(
                "The build logged errors that did not fail it: %(errors)s",
                errors="; ".join(others[:5])))

    def _build_failed(self, exc, operation):
        """Stop the process if it still runs (its log's end goes on ``operation``); remove
        a database this install created."""
        _logger.error("Building template %s (%s) failed: %s", self.code, self.database_name, exc)
        paths = self._build_paths()
        if self.build_pid:
            odoo_process.stop(self.build_pid, paths["status"])
            log_text = odoo_process.read_log(paths["log"], paths["status"])
            if operation:
                operation.log_tail = odoo_process.tail(log_text, 3000)
        if self.build_mode == "install" and self.database_owned:
            self._drop_database()
        self.sudo().write({"state": "error" if self.build_mode == "install" else "configuring",
                           "build_pid": False})
        self.message_post(body=self.env._("Template build failed: %(error)s", error=str(exc)))

    def _build_paths(self):
        folder = self._saas_log_dir()
        return {"log": os.path.join(folder, "template-%s.log" % self.code),
                "status": os.path.join(folder, "template-%s.status" % self.code)}

    # -- steps -------------------------------------------------------------------
    def _check_database_exists(self):
        """An update (-u) of a missing database would let Odoo create an empty one."""
        with pg.maintenance(self._saas_pg_params()) as conn:
            if not pg.exists(conn, self.database_name):
                raise UserError(self.env._(
                    "The database %(db)s does not exist: build the template again.",
                    db=self.database_name))

    def _build_prepare(self):
        """Record (committed) that this template creates its database, before it does.

        A database found under that name was created by an earlier build of
        this template only if the ownership was already recorded (it is
        recorded after checking the name is free): that attempt was interrupted
        (worker killed, server restart), so its half-built database is removed
        and the build starts clean.  Any other database is left untouched.
        """
        with pg.maintenance(self._saas_pg_params()) as conn:
            exists = pg.exists(conn, self.database_name)
        if exists and not self.database_owned:
            raise UserError(self.env._(
                "A database named %(db)s already exists and was not built by SaaS "
                "Manager: it is left untouched.", db=self.database_name))
        if exists:
            _logger.info("Template %s: removing %s, left by an interrupted build",
                         self.code, self.database_name)
            self._drop_database()
        self.sudo().database_owned = True
        self.env["saas.instance"]._commit()

    def _set_admin_password(self):
        """A generated administrator password, hashed as Odoo does, stored encrypted; the
        other users lose theirs: the template is reachable at its host while it is
        configured, and demo data brings ``demo``/``demo`` and ``portal``/``portal``."""
        password = customize.new_password()
        hashed = self.env["res.users"]._crypt_context().hash(password)
        with self._template_cursor() as cr:
            cr.execute("UPDATE res_users SET password = %s WHERE login = %s",
                       (hashed, self.admin_login))
            if cr.rowcount != 1:
                raise UserError(self.env._("No user %(login)s in the template.",
                                           login=self.admin_login))
            sanitize.lock_other_users(cr, self.admin_login)
        self.sudo().admin_password = password
