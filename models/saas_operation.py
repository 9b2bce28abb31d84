"""saas.operation: everything done to an instance or a template, as a record.

One record per provisioning, template build or refresh, suspension,
reactivation, termination (and, as they come, backups, restores, updates and
pool fills).  A button, a cron or a subscription *queues* an operation and
wakes the runner (``ir.cron._trigger``); the request returns at once.

**The runner** (:meth:`SaasOperation._cron_run`, one cron) takes due
operations oldest first.  For each, it takes a session-level advisory lock on
the *target* (an instance or a template), so that two workers never act on
one target, re-reads the database after the lock (see
``_refresh_snapshot``), runs the target's handler ``_saas_op_<kind>``, and
commits.  A handler receives an :class:`OperationRun` and runs its steps in
``with run.step(name):``, which times them and commits the current step (the
operator's form shows it); the steps are written once, when the attempt ends
(so that a failure, rolled back, still shows its steps, and recording costs
a single INSERT).  Short operations that are safe to repeat (suspend,
reactivate) run *inline*, inside the caller's transaction.

**Failures** are *retryable* when they are expected to go away by themselves
(:class:`..engine.errors.RetryableError`: a server not reachable, a database
still in use): the operation is queued again with an exponential backoff
(``saas.operation_retry_seconds`` x 2^(attempt-1)) until
``saas.operation_max_attempts``, as OCA ``queue_job`` does for its
``RetryableJobError``.  Any other failure is *fatal*: the operation fails
and waits for an operator (Retry, or Cancel).

**Interrupted runs**: the lock belongs to the worker's connection, so when
a worker is killed the lock goes with it.  An operation found *running*,
not waiting and not locked was interrupted: the runner resumes it (handlers
are written so that running one again is safe, e.g. provisioning first
removes what an earlier attempt created).

**Waiting**: a handler may return a number of seconds (a template build
polls its detached Odoo process): the operation stays *running*, unlocked,
and the runner comes back to it then.

**Lanes**: backups and restore drills (:data:`BACKUP_KINDS`) run on a second
runner (cron *SaaS: run queued backups*), so that dumping a large database
never holds up a provisioning or a reactivation; everything else runs on the
main one.  A target's operations still run in the order asked, across lanes.
"""

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, clean_context

from ..engine.errors import RetryableError

_logger = logging.getLogger(__name__)

OPERATION_KINDS = [
    ("provision", "Provisioning"),
    ("build", "Template Build"),
    ("refresh", "Template Refresh"),
    ("suspend", "Suspension"),
    ("reactivate", "Reactivation"),
    ("terminate", "Termination"),
    ("backup", "Backup"),
    ("restore", "Restore"),
    ("drill", "Restore Drill"),
    ("pool_fill", "Standby Pool Fill"),
    ("domain", "Custom Domain"),
    ("update", "Module Update"),
    ("install", "App Install"),
]
#: Kinds run by the backup runner; the main runner runs the others.
BACKUP_KINDS = ("backup", "drill")
#: The runner (ir.cron) of each lane.
RUNNERS = {"main": "saas_manager.ir_cron_saas_operation",
           "backups": "saas_manager.ir_cron_saas_backup_runner"}
OPERATION_STATES = [
    ("queued", "Queued"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]
OPEN_STATES = ("queued", "running")
#: First key of the advisory locks, per target model (the second key is the id).
LOCK_KEYS = {"saas.instance": 0x5AA5, "saas.template": 0x5AA6}
#: A runner stops taking new operations after this many seconds (cron time limits).
RUN_BUDGET = 240
#: Characters of the error and log kept on the record.
ERROR_LIMIT, LOG_LIMIT = 4000, 6000
#: The bus notification sent when an operation changes (see static/src/js).
BUS_TYPE = "saas_manager.operation"


@dataclass
class OperationRun:
    """One run of an operation, as its target's handler sees it: the operation (its
    params, its attempt) and the steps timed so far."""

    operation: object
    inline: bool = False
    steps: list = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name):
        """Time one step; shown as the operation's current step while it runs (committed,
        so the operator's form shows it, unless the run is inline)."""
        self.operation.step = name
        self.operation._notify_progress()
        if not self.inline:
            self.operation._commit()
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.steps.append({"name": name, "state": "failed",
                               "error": str(exc)[:ERROR_LIMIT],
                               "seconds": time.perf_counter() - start})
            raise
        self.steps.append({"name": name, "state": "done",
                           "seconds": time.perf_counter() - start})

    def seconds(self):
        return sum(step["seconds"] for step in self.steps)


class SaasOperation(models.Model):
    _name = "saas.operation"
    _description = "SaaS Operation"
    _inherit = ["saas.protected.mixin", "saas.lifecycle.mixin"]
    _order = "id desc"
    _rec_names_search = ["instance_id", "template_id", "kind"]

    kind = fields.Selection(OPERATION_KINDS, required=True, readonly=True, index=True,
                            saas_protected=True)
    instance_id = fields.Many2one("saas.instance", readonly=True, index="btree_not_null",
                                  ondelete="cascade", saas_protected=True)
    template_id = fields.Many2one("saas.template", readonly=True, index="btree_not_null",
                                  ondelete="cascade", saas_protected=True)
    server_id = fields.Many2one("saas.server", compute="_compute_server_id", store=True,
                                index=True, help="Where the target's database lives.")
    state = fields.Selection(OPERATION_STATES, default="queued", required=True, readonly=True,
                             index=True, saas_protected=True)
    step = fields.Char(string="Current Step", readonly=True, saas_protected=True,
                       help="The step being run, or the step that failed.")
    step_ids = fields.One2many("saas.operation.step", "operation_id", string="Steps",
                               readonly=True)
    params = fields.Json(readonly=True, saas_protected=True,
                         help="What the operation was asked to do (e.g. a suspension's reason).")
    error = fields.Text(readonly=True, saas_protected=True)
    retryable = fields.Boolean(readonly=True, saas_protected=True,
                               help="The last failure was one that goes away by itself.")
    attempt = fields.Integer(readonly=True, saas_protected=True)
    max_attempts = fields.Integer(readonly=True, saas_protected=True)
    next_run_at = fields.Datetime(
        string="Next Run", readonly=True, saas_protected=True,
        help="Not run before this time: the next retry, or when a waiting operation looks "
             "again.")
    requested_by = fields.Many2one("res.users", readonly=True, default=lambda self: self.env.user,
                                   saas_protected=True)
    started_at = fields.Datetime(readonly=True, saas_protected=True)
    ended_at = fields.Datetime(readonly=True, saas_protected=True)
    seconds = fields.Float(string="Duration (s)", digits=(16, 2), readonly=True,
                           saas_protected=True, help="Time spent in the steps.")
    log_tail = fields.Text(readonly=True, saas_protected=True)
    target_name = fields.Char(compute="_compute_target_name")

    _sql_constraints = [
        ("one_target", "CHECK (num_nonnulls(instance_id, template_id) = 1)",
         "An operation acts on exactly one instance or template."),
    ]

    @api.depends("kind", "instance_id", "template_id")
    def _compute_display_name(self):
        labels = dict(self._fields["kind"]._description_selection(self.env))
        for operation in self:
            operation.display_name = "%s: %s" % (labels.get(operation.kind, operation.kind),
                                                 operation._target().display_name or "-")

    @api.depends("instance_id.server_id", "template_id.server_id")
    def _compute_server_id(self):
        for operation in self:
            operation.server_id = operation._target().server_id

    def _compute_target_name(self):
        for operation in self:
            operation.target_name = operation._target().display_name

    def _target(self):
        return self.instance_id or self.template_id

    # -- queueing ------------------------------------------------------------------
    @api.model
    def _queue(self, target, kind, params=None, wake=True):
        """The open operation of this kind on ``target``, or a new queued one.

        Asking twice (a cron running again, a double click) gives the same
        operation.  The runner is woken after the commit (unless ``wake`` is
        false: the caller runs it itself).
        """
        target.ensure_one()
        link = self._target_field(target)
        operation = self.sudo().search([(link, "=", target.id), ("kind", "=", kind),
                                        ("state", "in", OPEN_STATES)], limit=1)
        if not operation:
            # No default_* of the caller's action (default_template_id, say) reaches it.
            operation = self.sudo().with_context(clean_context(self.env.context)).create({
                "instance_id": False, "template_id": False,
                link: target.id, "kind": kind, "params": params or {},
                "requested_by": self.env.uid,
                "max_attempts": self.env["saas.settings"]._get("saas.operation_max_attempts")})
        if wake:
            operation._runner()._trigger()
        return operation

    @api.model
    def _target_field(self, target):
        """The operation's field pointing to ``target``, as the target's model declares it
        (``saas.operation.mixin._saas_operation_link``)."""
        return target._saas_operation_link

    def _lane(self):
        """The lane of these operations' kind (all of one lane)."""
        return "backups" if self[:1].kind in BACKUP_KINDS else "main"

    def _runner(self, lane=None):
        """The cron running ``lane`` (default: these operations' lane)."""
        return self.env.ref(RUNNERS[lane or self._lane()]).sudo()

    # -- the runner ------------------------------------------------------------------
    @api.model
    def _cron_run(self, lane="main"):
        """Run every due operation of ``lane``, oldest first, one at a time; then plan the
        next wake-up."""
        deadline = time.monotonic() + RUN_BUDGET
        seen, ran = set(), 0
        while time.monotonic() < deadline:
            operation = self._next_due(seen, lane)
            if not operation:
                break
            seen.add(operation.id)
            ran += operation._execute_guarded()
            self.env["ir.cron"]._notify_progress(done=ran, remaining=self._due_count(lane))
        self._plan_wakeup(lane)
        return ran

    @api.model
    def _lane_domain(self, lane):
        return [("kind", "in" if lane == "backups" else "not in", BACKUP_KINDS)]

    @api.model
    def _due_domain(self, lane="main"):
        now = fields.Datetime.now()
        return [("state", "in", OPEN_STATES), *self._lane_domain(lane),
                "|", ("next_run_at", "=", False), ("next_run_at", "<=", now)]

    @api.model
    def _due_count(self, lane="main"):
        return self.sudo().search_count(self._due_domain(lane))

    @api.model
    def _next_due(self, seen, lane="main"):
        """The oldest due operation of ``lane`` not tried in this run whose target has no
        older open one in any lane (a target's operations run in the order asked for)."""
        for operation in self.sudo().search([*self._due_domain(lane),
                                             ("id", "not in", list(seen))],
                                            order="id", limit=50):
            if not operation._waits_for_older():
                return operation
            seen.add(operation.id)
        return self.browse()

    def _waits_for_older(self):
        """Does the target have an older open operation (in any lane), which runs first?"""
        link = self._target_field(self._target())
        return bool(self.sudo().search_count([(link, "=", self._target().id),
                                              ("state", "in", OPEN_STATES),
                                              ("id", "<", self.id)]))

    @api.model
    def _plan_wakeup(self, lane="main"):
        """Wake the lane's runner when its next waiting or retried operation is due."""
        upcoming = self.sudo().search([("state", "in", OPEN_STATES), *self._lane_domain(lane),
                                       ("next_run_at", ">", fields.Datetime.now())],
                                      order="next_run_at", limit=1)
        if upcoming:
            self._runner(lane)._trigger(at=upcoming.next_run_at)

    def _execute_guarded(self):
        """:meth:`_execute` for the runner: whatever escapes it (a failure while handling
        a failure) fails this operation alone, and the runner goes on with the others."""
        try:
            return self._execute()
        except Exception as exc:  # one broken operation must not wedge the runner
            _logger.exception("Operation %s could not be run", self.id)
            if not self._testing():
                self.env.cr.rollback()
            self.env.invalidate_all()
            self.write({"state": "failed", "retryable": False, "next_run_at": False,
                        "ended_at": fields.Datetime.now(),
                        "error": self.env._("Could not be run: %(error)s",
                                            error=str(exc))[:ERROR_LIMIT]})
            self._commit()
            return 0

    def _execute(self, inline=False):
        """Lock the target, run the operation once; 1 if it was run, 0 if another worker has
        it or it is no longer due.

        ``inline`` runs it inside the caller's transaction (a button, a
        subscription cron's step): no commit, a savepoint around the handler.
        Only short operations that are safe to repeat run inline; the runner
        runs the others.
        """
        self.ensure_one()
        # Inline, an older operation (an update waiting for its Odoo process, say) is
        # not overtaken: the runner runs this one after it.
        if (inline and self._waits_for_older()) or not self._lock(inline):
            return 0
        try:
            if not inline:
                self._refresh_snapshot()  # what the lock's previous holder committed
            if self.state not in OPEN_STATES or (
                    self.next_run_at and self.next_run_at > fields.Datetime.now()):
                return 0
            self._run_once(inline)
            return 1
        finally:
            self._unlock(inline)

    def _run_once(self, inline=False):
        polling = self.state == "running" and bool(self.next_run_at)
        interrupted = self.state == "running" and not self.next_run_at
        values = {"state": "running", "next_run_at": False}
        if not polling:
            values.update(attempt=self.attempt + 1, error=False, retryable=False)
        if not self.started_at:
            values["started_at"] = fields.Datetime.now()
        run = OperationRun(self, inline)
        if interrupted:
            run.steps.append({"name": "interrupted", "state": "failed", "seconds": 0,
                              "error": self.env._("The worker running step %(step)s stopped "
                                                  "(killed or restarted); resumed.",
                                                  step=self.step or "-")})
        self.write(values)
        if not inline:
            self._commit()
        target = self._target().sudo()
        try:
            if interrupted and self.attempt > self.max_attempts:
                # Killed at every attempt (say, out of memory): an operator must look.
                raise UserError(self.env._(
                    "Interrupted at each of its %(count)s attempts: not resumed again.",
                    count=self.max_attempts))
            with self._attempt(inline):
                wait = getattr(target, "_saas_op_%s" % self.kind)(run)
        except Exception as exc:  # recorded on the operation; the target decides its state
            self._failed(target, run, exc)
        else:
            if wait:
                self._wait(run, wait)
            else:
                self._done(run)
        if not inline:
            self._commit()

    @contextlib.contextmanager
    def _attempt(self, inline):
        """A savepoint inline and in tests; otherwise the handler commits as it goes, and
        what it left uncommitted is rolled back on failure."""
        if inline or self._testing():
            with self.env.cr.savepoint():
                yield
            return
        try:
            yield
        except Exception:
            self.env.cr.rollback()
            self.env.invalidate_all()
            raise

    def _write_steps(self, run):
        """After the steps already written: a waiting operation writes its steps at each
        look, within one attempt."""
        first = len(self.step_ids)
        self.env["saas.operation.step"].sudo().create([
            {**step, "operation_id": self.id, "attempt": self.attempt, "sequence": first + index}
            for index, step in enumerate(run.steps)])

    # -- endings -----------------------------------------------------------------------
    def _done(self, run):
        self._write_steps(run)
        self.write({"state": "done", "step": False, "ended_at": fields.Datetime.now(),
                    "seconds": self.seconds + run.seconds()})
        self.env["saas.incident"]._saas_resolve(
            "operation", self._target(), self.env._("%(operation)s done.",
                                                    operation=self.display_name),
            detail=self.kind)
        self._notify_progress()

    def _wait(self, run, seconds):
        self._write_steps(run)
        self.write({"next_run_at": fields.Datetime.now() + timedelta(seconds=seconds),
                    "seconds": self.seconds + run.seconds()})
        self._runner()._trigger(at=self.next_run_at)

    def _failed(self, target, run, exc):
        """Retry a retryable failure with backoff while attempts remain; else fail."""
        retry = isinstance(exc, RetryableError | psycopg2.OperationalError) and (
            self.attempt < self.max_attempts)
        _logger.log(logging.INFO if retry else logging.ERROR,
                    "Operation %s (%s of %s) failed at step %s%s: %s", self.id, self.kind,
                    self._target().display_name, self.step,
                    ", will retry" if retry else "", exc)
        values = {"error": str(exc)[:ERROR_LIMIT], "retryable": retry,
                  "seconds": self.seconds + run.seconds()}
        hook = getattr(target, "_saas_op_%s_failed" % self.kind, None)
        if retry:
            delay = self.env["saas.settings"]._get("saas.operation_retry_seconds")
            values.update(state="queued", next_run_at=fields.Datetime.now() + timedelta(
                seconds=delay * 2 ** (self.attempt - 1)))
        else:
            values.update(state="failed", ended_at=fields.Datetime.now())
        self._write_steps(run)
        self.write(values)
        if hook:
            try:
                with self.env.cr.savepoint():
                    hook(self, exc)
            except Exception as hook_exc:  # recorded: the operation stays failed
                _logger.exception("Operation %s: cleaning up after the failure failed", self.id)
                self.error = "%s\n%s" % (self.error, self.env._(
                    "Cleaning up after it failed too: %(error)s", error=str(hook_exc)))
        if retry:
            self._runner()._trigger(at=self.next_run_at)
        else:
            self.env["saas.incident"]._saas_open(
                "operation", target, self.env._("%(operation)s failed",
                                                operation=self.display_name),
                self.error, detail=self.kind)
        self._notify_progress()

    def _notify_progress(self):
        """Tell the SaaS users' browsers (on commit): an open form of the target reloads."""
        target = self._target()
        self.env["bus.bus"]._sendone(
            self.env.ref("saas_manager.group_saas_user"), BUS_TYPE,
            {"model": target._name, "id": target.id, "operation_id": self.id,
             "state": self.state, "step": self.step or False})

    # -- locks ---------------------------------------------------------------------------
    def _lock(self, inline=False):
        """Advisory lock on the target.  The runner's is session-level: it survives the
        operation's commits, and goes with the worker's connection if the worker dies.
        An inline run's is transaction-level: held until the caller's transaction ends
        (commit or rollback), so nothing runs on the target before its work is committed."""
        target = self._target()
        function = "pg_try_advisory_xact_lock" if inline else "pg_try_advisory_lock"
        self.env.cr.execute(SQL("SELECT %s(%s, %s)", SQL.identifier(function),
                                LOCK_KEYS[target._name], target.id))
        return self.env.cr.fetchone()[0]

    def _unlock(self, inline=False):
        """Release the runner's lock (an inline run's ends with its transaction); an
        aborted transaction is rolled back first (outside tests)."""
        if inline:
            return
        aborted = psycopg2.extensions.TRANSACTION_STATUS_INERROR
        if self.env.cr._cnx.get_transaction_status() == aborted and not self._testing():
            self.env.cr.rollback()
        target = self._target()
        self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)",
                            [LOCK_KEYS[target._name], target.id])

    # -- buttons -------------------------------------------------------------------------
    def action_retry(self):
        """Queue a failed operation again (its target decides whether it still applies)."""
        self._check_operator()
        if self.filtered(lambda op: op.state != "failed"):
            raise UserError(self.env._("Only failed operations can be retried."))
        for operation in self.sudo():
            operation.write({"state": "queued", "next_run_at": False, "ended_at": False,
                             "max_attempts": operation.attempt + operation.max_attempts})
            getattr(operation._target(), "_saas_op_%s_retried" % operation.kind,
                    lambda op: None)(operation)
            operation._runner()._trigger()
        return True

    def action_cancel(self):
        """Cancel a queued or failed operation (a running one is stopped by its target's own
        button, e.g. Cancel Build)."""
        self._check_operator()
        if self.filtered(lambda op: op.state not in ("queued", "failed")):
            raise UserError(self.env._("Only queued or failed operations can be cancelled."))
        for operation in self.sudo():
            operation.write({"state": "cancelled", "next_run_at": False,
                             "ended_at": fields.Datetime.now()})
            getattr(operation._target(), "_saas_op_%s_cancelled" % operation.kind,
                    lambda op: None)(operation)
            operation._notify_progress()
        return True

    def _check_operator(self):
        """Retry and cancel act on the target: the right to edit it is required."""
        for operation in self:
            operation._target().check_access("write")

    def action_view_steps(self):
        """The operation with its steps, over the form it is listed in."""
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "new", "name": self.display_name}

    def action_open_target(self):
        self.ensure_one()
        target = self._target()
        return {"type": "ir.actions.act_window", "res_model": target._name,
                "res_id": target.id, "view_mode": "form", "target": "current"}
