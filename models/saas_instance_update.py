"""Module updates and app installs of one instance, with automatic rollback.

An *update* operation (queued by an update campaign) or an *install*
operation (an app a customer asked for) runs these steps:

1. **plan**: which modules need ``-u`` (``engine.modules``: installed modules
   whose code checksum differs from the one stored by the database's last
   successful update), which to install; a module installed in the database
   but missing on the server fails here, before anything is touched.  Nothing
   to do: the operation ends, the database untouched (*skipped*).
2. **maintenance**: the host answers the maintenance page (HTTP 503,
   ``engine.maintenance``) from here on, so that the backup holds the
   customer's last work; the database keeps its connections.
3. **backup**: a verified backup (kind *before operation*).
4. **odoo**: ``-u``/``-i`` in a detached child Odoo with the server's
   configuration, like a template build (``engine.odoo_process``): the
   runner polls it, so a killed cron worker does not kill it and a later
   run collects it; past ``saas_update_timeout`` seconds it is stopped.
5. **check**: exit code 0, no ERROR or CRITICAL line in its log, every module
   asked for installed, then the database answers ``/web/login`` through the
   serving Odoo and its administrator signs in (``engine.fleet.check_served``,
   with the maintenance pass).
6. **checksums** stored in the database, **serve**: the page goes (recorded
   first: a worker killed after it never puts the page back).

**On any failure after the child was started** (or may have been: a worker
killed between starting it and recording it is found by its status file),
the rollback is recorded (committed: a worker killed during it resumes the
rollback, never the check), the child is stopped and the backup of step 3 is
restored in place (``engine.backup.replace``: restored beside, checked,
swapped), then the page goes: the instance serves its old state.  The
replaced database is backed up (the *safety backup*: what the database's own
crons wrote meanwhile is kept) and dropped.  The instance is marked *Update
Failed* with the error (campaigns skip it until an operator clears it).  When
the restore itself fails, or the state of the database is not known (the
rollback was killed at every attempt), the page stays up and the instance is
marked *Restore Failed*: it never serves a half-updated database.  A failure
before the child started changed nothing: the page goes, the instance is
marked *Update Failed*.
"""

import contextlib
import logging
import os
import secrets
import time

import psycopg2

from odoo import fields, models
from odoo.exceptions import UserError

from ..engine import backup as engine_backup
from ..engine import fleet, maintenance, odoo_process, pg
from ..engine import modules as engine_modules
from .saas_instance_restore import REPLACED_DATABASE, STAGING_DATABASE
from .saas_settings import conf

_logger = logging.getLogger(__name__)

#: How soon the runner looks again at a running update.
UPDATE_POLL_SECONDS = 3
UPDATE_STATES = [("failed", "Update Failed"), ("restore_failed", "Restore Failed")]
#: What an update operation is asked (its params); the other keys are its progress.
REQUEST_KEYS = ("campaign_id", "modules", "install", "revision")
#: Checksums of the server's addons, per (campaign, addons paths): hashed once per
#: campaign and process, not once per database.  Only the newest few are kept.
_CHECKSUM_CACHES = {}
_CACHES_KEPT = 4


class UpdateFailed(UserError):
    """The update failed; ``restored`` says whether the database is back as it was,
    ``safety`` is the engine backup of the database the restore replaced (recorded by
    the failure hook: what the failed attempt wrote is rolled back)."""

    def __init__(self, message, restored, safety=None):
        super().__init__(message)
        self.restored = restored
        self.safety = safety


def _checksum_cache(key):
    """The campaign's cache (``key``: campaign id, addons paths); a fresh one outside a
    campaign (an app install hashes the code as it is now)."""
    if key[0] is None:
        return {}
    if key not in _CHECKSUM_CACHES:
        while len(_CHECKSUM_CACHES) >= _CACHES_KEPT:
            _CHECKSUM_CACHES.pop(next(iter(_CHECKSUM_CACHES)))
        _CHECKSUM_CACHES[key] = {}
    return _CHECKSUM_CACHES[key]


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    update_state = fields.Selection(
        UPDATE_STATES, readonly=True, copy=False, tracking=True, saas_protected=True,
        help="Set when an update or app install failed: update campaigns skip the instance "
             "until an operator clears it.")
    update_error = fields.Text(readonly=True, copy=False, saas_protected=True,
                               groups="saas_manager.group_saas_user")

    # -- requests ------------------------------------------------------------------
    def _saas_install_apps(self, names):
        """Queue the install of the modules ``names`` (an app a customer asked for):
        refused when the plan does not allow one, or the server does not have it."""
        self.ensure_one()
        self._check_states(("active",), self.env._("Apps are installed on active instances."))
        if self.update_state:
            raise UserError(self.env._("Clear the failed update of %(name)s first.",
                                       name=self.name))
        names = [self._saas_module_name(name) for name in names]
        if not names:
            raise UserError(self.env._("Name at least one module to install."))
        refused = self.plan_id._saas_refused_modules(names)
        if refused:
            raise UserError(self.env._(
                "The plan %(plan)s does not allow %(names)s.", plan=self.plan_id.name,
                names=", ".join(refused)))
        server_wide = [name for name in names if name in self._saas_server_wide_modules()]
        if server_wide:
            raise UserError(self.env._(
                "%(names)s runs server-wide with the server's own configuration: it is never "
                "installed in a client database.", names=", ".join(server_wide)))
        missing = [name for name in names if not engine_modules.find_addon(
            name, self._saas_addons_paths())]
        if missing:
            raise UserError(self.env._("This server has no module %(names)s.",
                                       names=", ".join(missing)))
        # Listed as updating nothing: an app install installs, it updates no other module.
        operation = self.env["saas.operation"]._queue(
            self, "install", {"install": names, "modules": []})
        if operation.params.get("install") != names:
            raise UserError(self.env._(
                "An install of %(names)s on %(name)s is already queued: wait for it.",
                names=", ".join(operation.params.get("install") or ()), name=self.name))
        self.message_post(body=self.env._("Install of %(names)s requested by %(user)s.",
                                          names=", ".join(names), user=self.env.user.name))
        return operation

    def _saas_server_wide_modules(self):
        """Modules no client database may install: saas_manager itself and the server's
        ``server_wide_modules`` (they would run with the server's configuration)."""
        wide = conf("server_wide_modules") or ""
        if not isinstance(wide, str):
            wide = ",".join(wide)
        return {"saas_manager", *fleet.split_modules(wide)}

    def _saas_module_name(self, name):
        try:
            return engine_modules.check_name(name)
        except ValueError as exc:
            raise UserError(self.env._("%(name)r is not a module name.", name=name)) from exc

    def action_clear_update_failure(self):
        """The operator looked at the failed update: campaigns include the instance again."""
        self.check_access("write")
        for instance in self.filtered("update_state"):
            if instance.update_state == "restore_failed" and not instance._saas_serving_old():
                raise UserError(self.env._(
                    "%(name)s still shows its maintenance page: restore a backup first "
                    "(Backups), then clear.", name=instance.name))
            instance.sudo().write({"update_state": False, "update_error": False})
            instance.message_post(body=self.env._("Update failure cleared by %(user)s.",
                                                  user=self.env.user.name))
        return True

    def _saas_restored_after_update(self):
        """A backup restored in place after the rollback of an update failed: the database
        is that backup's, the maintenance page goes, and the failure can be cleared."""
        maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        if self.update_state == "restore_failed":
            self.sudo().update_state = "failed"

    def _saas_serving_old(self):
        """No maintenance page: the database serves (after a restore by hand, say)."""
        data_dir = self._saas_server().data_dir
        return maintenance.blocks(data_dir, self.database_name) is None

    # -- the handler (run by saas.operation) ----------------------------------------------
    def _saas_op_update(self, run):
        """Plan, put the page up, back up and start the child; then collect it (or go on
        with a rollback a killed worker left)."""
        params = run.operation.params or {}
        if params.get("rolling_back"):
            raise self._update_rollback(run, UserError(params["rolling_back"]))
        if params.get("served"):
            return self._update_serve(run)
        if params.get("launching"):
            return self._update_collect(run)
        # An attempt killed before its child started changed nothing but the page.
        maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        if self.state != "active":
            raise UserError(self.env._("Only an active instance is updated."))
        with run.step("plan"):
            update, install = self._update_plan(params)
        if not (update or install):
            run.operation.params = dict(params, skipped=True, update=[], install=[])
            self._update_mark_revision(params)
            self._update_ended(run.operation, "skipped")
            return None
        with run.step("maintenance"):
            self._update_publish()
        with run.step("backup"):
            self._saas_remove_partial_backup(run.operation)
            made = self._saas_backup(self._owned_database_name(), run.operation)
            backup = self.env["saas.backup"]._saas_record(self, "before_operation", made,
                                                          run.operation)
        run.operation.params = dict(run.operation.params, backup_id=backup.id,
                                    update=update, install=install)
        self._update_start(run)
        return UPDATE_POLL_SECONDS

    _saas_op_install = _saas_op_update

    def _saas_op_update_failed(self, operation, exc):
        """Mark the instance (rolled back, or not); tell its campaign line.

        A failure that did not go through the rollback (the runner gave up on an
        attempt killed each time) after the child may have started leaves the
        database's state unknown: the page stays, the instance is *Restore Failed*.
        Before that, nothing was changed: the page goes."""
        if operation.state != "failed":
            return
        params = operation.params or {}
        if isinstance(exc, UpdateFailed):
            restored = exc.restored
            if exc.safety:
                self.env["saas.backup"]._saas_record(self, "before_operation", exc.safety,
                                                     operation)
        else:
            restored = not params.get("launching")
            if restored:
                maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        self.sudo().write({"update_state": "failed" if restored else "restore_failed",
                           "update_error": str(exc)})
        self._update_keep_log(operation)
        self.message_post(body=self.env._(
            "%(operation)s failed: %(error)s", operation=operation.display_name,
            error=str(exc)))
        self._update_ended(operation, "failed")

    def _saas_op_update_cancelled(self, operation):
        self._update_ended(operation, "cancelled")

    def _saas_op_update_retried(self, operation):
        """Retry: the update starts over from its plan (the failed attempt was rolled
        back); the instance is no longer marked, its campaign line runs again.  Refused
        while the restore failed: the database may be half-updated."""
        if self.update_state == "restore_failed":
            raise UserError(self.env._(
                "The restore after this update failed: restore a backup of %(name)s first, "
                "then clear its update failure.", name=self.name))
        operation.params = {key: value for key, value in (operation.params or {}).items()
                            if key in REQUEST_KEYS}
        self.sudo().write({"update_state": False, "update_error": False})
        self.env["saas.update.line"].sudo().search(
            [("operation_id", "=", operation.id)]).write({"state": "running"})

    _saas_op_install_failed = _saas_op_update_failed
    _saas_op_install_cancelled = _saas_op_update_cancelled
    _saas_op_install_retried = _saas_op_update_retried

    def _update_ended(self, operation, state):
        for line in self.env["saas.update.line"].sudo().search(
                [("operation_id", "=", operation.id)]):
            line._saas_ended(state)

    # -- steps ---------------------------------------------------------------------------
    def _update_plan(self, params):
        """``(modules to update, modules to install)``; a module of the database missing
        on the server raises (the child Odoo would not load the registry)."""
        paths = self._saas_addons_paths()
        cache = _checksum_cache((params.get("campaign_id"), tuple(paths)))
        with self._update_connection() as conn:
            plan = engine_modules.changed_modules(conn, paths, cache)
            installed = set(engine_modules.installed(conn))
        if plan.missing:
            raise UserError(self.env._(
                "Installed in %(db)s but missing on this server: %(names)s.",
                db=self.database_name, names=", ".join(plan.missing)))
        install = [name for name in params.get("install") or () if name not in installed]
        for name in install:
            if not engine_modules.find_addon(name, paths):
                raise UserError(self.env._("This server has no module %(name)s.", name=name))
        listed = params.get("modules")
        if listed is not None:
            return [name for name in listed if name in installed], install
        return list(plan.changed), install

    def _update_connection(self):
        """A connection to the instance's database, closed at the block's end."""
        return contextlib.closing(psycopg2.connect(dbname=self._owned_database_name(),
                                                   **self._saas_pg_params()))

    def _update_paths(self, operation):
        folder = self._saas_log_dir()
        stem = "update-%s-%d" % (self.database_name, operation.id)
        return {"log": os.path.join(folder, stem + ".log"),
                "status": os.path.join(folder, stem + ".status")}

    def _update_publish(self):
        """The maintenance page (again: a new pass each time); the pass."""
        env = self.with_context(lang=self.partner_id.lang or self.env.lang).env
        page = maintenance.render(
            lang=(env.lang or "en_US").replace("_", "-"), company=self.company_id.name,
            host=self.host, title=env._("Your Odoo is being updated"),
            body=env._("It will be back in a few minutes. Nothing you did is lost."))
        return maintenance.publish(self._saas_server().data_dir, self.database_name, page)

    def _update_start(self, run):
        params = run.operation.params
        paths = self._update_paths(run.operation)
        # Recorded (committed) before the child starts: from here on, any failure (this
        # worker killed included) restores the backup.
        run.operation.params = dict(params, launching=True, started=time.time())
        run.operation._commit()
        try:
            with run.step("start"):
                python, launcher, rcfile, options, env = self._saas_odoo_child()
                args = odoo_process.command(
                    python, launcher, rcfile, self.database_name, params["update"],
                    update=True, install=params["install"], demo=self.template_id.with_demo,
                    logfile=paths["log"], options=options)
                pid = odoo_process.start(args, paths["status"], env=env, logfile=paths["log"])
                # The child's own time counts from here (the "odoo" step).
                run.operation.params = dict(run.operation.params, pid=pid,
                                            started=time.time())
        except Exception as exc:  # the child may be running: roll back
            raise self._update_rollback(run, exc) from exc
        _logger.info("Instance %s: update process %s started", self.name, pid)

    def _update_collect(self, run):
        """Wait for the child, or check what it did; any failure rolls back."""
        params = run.operation.params
        paths = self._update_paths(run.operation)
        pid = params.get("pid") or odoo_process.find(paths["status"]) or 0
        status = odoo_process.poll(pid, paths["status"])  # an ended run left its status
        elapsed = time.time() - params["started"]
        try:
            if status == odoo_process.RUNNING:
                timeout = self._saas_server().update_timeout
                if elapsed <= timeout:
                    return UPDATE_POLL_SECONDS
                raise UserError(self.env._("The update did not end within %(sec)s s: stopped.",
                                           sec=timeout))
            if status == odoo_process.LOST:
                raise UserError(self.env._(
                    "The update process ended without a status (killed, or the server "
                    "restarted under it)."))
            run.steps.append({"name": "odoo", "state": "done", "seconds": elapsed})
            log_text = odoo_process.read_log(paths["log"], paths["status"])
            self._update_keep_log(run.operation, log_text)
            with run.step("check"):
                self._update_check(status, log_text, params)
            with run.step("checksums"):
                self._update_store_checksums(params)
        except Exception as exc:  # any failure: the backup goes back in place
            raise self._update_rollback(run, exc) from exc
        # Recorded before the page goes: a worker killed after it does the rest only.
        run.operation.params = dict(run.operation.params, served=True, seconds=elapsed)
        run.operation._commit()
        return self._update_serve(run)

    def _update_serve(self, run):
        with run.step("serve"):
            maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        self._update_succeeded(run.operation, run.operation.params["seconds"])

    def _update_check(self, status, log_text, params):
        fatal, others = odoo_process.problems(log_text)
        if status or fatal or others:
            raise UserError(self.env._(
                "The update process failed (exit %(code)s): %(why)s", code=status,
                why=(fatal + others)[0] if fatal or others else odoo_process.tail(log_text, 500)))
        with self._update_connection() as conn, conn.cursor() as cr:
            cr.execute("SELECT name FROM ir_module_module WHERE name = ANY(%s) "
                       "AND state != 'installed'", [params["update"] + params["install"]])
            pending = sorted(name for (name,) in cr.fetchall())
        if pending:
            raise UserError(self.env._("Not installed after the update: %(names)s.",
                                       names=", ".join(pending)))
        self._saas_release(self.database_name)
        token = self._saas_issue_login(self.database_name, self.admin_login or "admin")
        try:
            fleet.check_served(self._saas_odoo_url(), self.host, self._update_publish(), token)
        except fleet.CheckFailed as exc:
            raise UserError(self.env._("The updated database does not serve: %(why)s",
                                       why=str(exc))) from exc

    def _update_store_checksums(self, params):
        """All installed modules' checksums after an update of what changed; only those of
        the modules updated or installed after a listed update or an app install (the
        others keep theirs: their code may have changed without being updated)."""
        cache = _checksum_cache((params.get("campaign_id"), tuple(self._saas_addons_paths())))
        only = None if params.get("modules") is None else params["update"] + params["install"]
        self._saas_store_checksums(self._owned_database_name(), cache, only)

    def _update_mark_revision(self, params):
        """A template revision upgrade done (or found done): the instance is on it."""
        if params.get("revision"):
            self.sudo().write({"template_revision": params["revision"],
                               "template_built_at": self.template_id.built_at})

    def _update_succeeded(self, operation, elapsed):
        params = operation.params
        self._update_mark_revision(params)
        self.message_post(body=self.env._(
            "%(operation)s done in %(sec).0f s: updated %(updated)s; installed %(installed)s.",
            operation=operation.display_name, sec=elapsed,
            updated=", ".join(params["update"]) or "-",
            installed=", ".join(params["install"]) or "-"))
        self._update_ended(operation, "done")

    # -- rollback --------------------------------------------------------------------------
    def _update_rollback(self, run, exc):
        """Stop the child, restore the pre-update backup, withdraw the page: the
        :class:`UpdateFailed` to raise (the restore failing too keeps the page).

        Recorded first, with the names of the restore's databases (committed by the
        step): a worker killed during the rollback is followed by this rollback again,
        which takes back or completes what the killed one left."""
        params = run.operation.params
        if not params.get("rolling_back"):
            token = secrets.token_hex(4)
            run.operation.params = dict(
                params, rolling_back=str(exc), staging=STAGING_DATABASE % (self.id, token),
                replaced=REPLACED_DATABASE % (self.id, token))
        with run.step("rollback"):
            try:
                self._update_stop(run.operation)
                safety = self._update_restore(run.operation)
            except Exception as restore_exc:  # reported with the update's own failure
                _logger.exception("Instance %s: restoring after the failed update failed",
                                  self.name)
                return UpdateFailed(self.env._(
                    "%(error)s The restore of the pre-update backup failed too: %(why)s "
                    "The maintenance page stays up.", error=str(exc), why=str(restore_exc)),
                    restored=False)
            maintenance.withdraw(self._saas_server().data_dir, self.database_name)
        return UpdateFailed(self.env._(
            "%(error)s The database was restored as it was before the update; the "
            "replaced one is kept as a backup (Before operation).", error=str(exc)),
            restored=True, safety=safety)

    def _update_stop(self, operation):
        paths = self._update_paths(operation)
        pid = (operation.params or {}).get("pid") or odoo_process.find(paths["status"])
        if pid:
            odoo_process.stop(pid, paths["status"])

    def _update_keep_log(self, operation, log_text=None):
        """The end of the child's log on the operation (after a failure too: what the
        failed attempt wrote was rolled back)."""
        paths = self._update_paths(operation)
        if log_text is None:
            log_text = odoo_process.read_log(paths["log"], paths["status"])
        if log_text:
            operation.log_tail = odoo_process.tail(log_text)

    def _update_restore(self, operation):
        """The pre-update backup in place of the database; the replaced copy backed up,
        then dropped (what a killed earlier rollback left is taken back or completed
        first).  Returns the engine backup of the replaced copy (None: a killed earlier
        rollback backed it up and dropped it already)."""
        params = operation.params
        backup = self.env["saas.backup"].sudo().browse(params["backup_id"]).exists()
        if not backup:
            raise UserError(self.env._("The pre-update backup is gone."))
        name = self._owned_database_name()
        staging, replaced = params["staging"], params["replaced"]
        pg_params, folder = self._saas_pg_params(), self._saas_filestore(name)
        with pg.maintenance(pg_params) as conn:
            leftovers = pg.exists(conn, staging) or pg.exists(conn, replaced)
        swapped = leftovers and engine_backup.recover_replace(
            pg_params, name, folder, staging, replaced, comment=self._owner_marker(),
            allowed=self.state == "active")
        if not swapped:
            made = backup._saas_local_copy(verify=False)  # replace() verifies it
            self._saas_release(name)
            engine_backup.replace(pg_params, made, name, folder, staging, replaced,
                                  comment=self._owner_marker(), keep_old=True)
        safety = self._saas_backup_replaced(replaced, operation)
        engine_backup.discard(pg_params, replaced, self._saas_filestore(replaced))
        return safety
