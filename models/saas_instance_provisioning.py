"""Provisioning: a queued instance becomes a served client database, step by step."""

import contextlib
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field

import psycopg2

from odoo import models
from odoo.addons.base.models.res_users import KEY_CRYPT_CONTEXT
from odoo.exceptions import UserError

from ..engine import customize, filestore, naming, pg, proxy, sanitize
from .saas_instance import RENAMEABLE_STATES

_logger = logging.getLogger(__name__)

#: Provisioning steps, in order; each is a method ``_provision_<step>``.
PROVISION_STEPS = ("clone", "filestore", "sanitize", "customize", "proxy")
#: The steps of an instance given a standby database (see saas_instance_pool).
POOL_STEPS = ("claim", "proxy")
#: The steps of an instance made from a backup (restore as new) or an Odoo zip (import).
COPY_STEPS = {"backup_id": ("restore", "sanitize_copy", "proxy"),
              "import_file": ("import", "sanitize_copy", "proxy")}
#: Start of the comment on every database an instance owns (:meth:`_owner_marker`).
OWNER_MARKER_PREFIX = "saas_manager instance "
#: Where a clone is created before it is marked and renamed into place (instance id, random).
PENDING_DATABASE = "saas_tmp_%d_%s"
PENDING_DATABASE_RE = re.compile(r"saas_tmp_(\d+)_[0-9a-f]{8}")


@dataclass
class ProvisionRun:
    """What one provisioning attempt carries from step to step."""

    password: str  # secret of the customize step's one-time API key, in memory only
    params: dict = field(default_factory=dict)  # the operation's: a copy's source, "pool"
    undo: list = field(default_factory=list)
    member: object = None  # the standby database being claimed (saas_instance_pool)

    def copy_source(self):
        """``backup_id`` or ``import_file`` for an instance made from a copy, else None."""
        return next((key for key in COPY_STEPS if self.params.get(key)), None)

    def steps(self):
        source = self.copy_source()
        if source:
            return COPY_STEPS[source]
        return POOL_STEPS if self.member else PROVISION_STEPS


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    # -- provisioning ----------------------------------------------------------
    def action_provision(self):
        """Queue the provisioning: the request returns at once, the runner does the work."""
        self.check_access("write")
        for instance in self:
            if instance.state not in RENAMEABLE_STATES:
                raise UserError(self.env._("%(name)s is already provisioned.",
                                           name=instance.name))
            if instance.template_id.state != "ready":
                raise UserError(self.env._(
                    "The template %(tpl)s is not ready (locked) yet.",
                    tpl=instance.template_id.name))
        self.sudo().state = "provisioning"
        for instance in self:
            self.env["saas.operation"]._queue(instance, "provision")
        return True

    def _provision(self, params=None):
        """Provision now, in this transaction (tests, benchmarks, a signup): the same
        operation the runner would run (``{"pool": True}``: from a standby database when
        one is ready).  True when the instance is active."""
        self.ensure_one()
        if self.state in RENAMEABLE_STATES:
            self.sudo().state = "provisioning"
        self.env["saas.operation"]._queue(self, "provision", params=params, wake=False)._execute()
        return self.state == "active"

    def _saas_op_provision(self, run):
        """Every step in order; on failure, undo what this attempt created, then raise."""
        if self.state != "provisioning":
            return
        attempt = ProvisionRun(customize.new_password(), params=run.operation.params or {})
        try:
            if self.owned_database:
                with run.step("recover"):
                    self._provision_recover(attempt)
            if attempt.params.get("pool") and not attempt.copy_source():
                attempt.member = self._pool_take()
            steps = list(attempt.steps())
            while steps:
                step = steps.pop(0)
                with run.step(step):
                    getattr(self, "_provision_%s" % step)(attempt)
                if step == "claim" and not attempt.member:  # the standby could not be had
                    steps = list(PROVISION_STEPS)
        except Exception as exc:  # undone here; recorded by the runner
            if isinstance(exc, psycopg2.Error) and not self._testing():
                self.env.cr.rollback()  # the manager's own transaction may be aborted
                self.invalidate_recordset()
            self._provision_undo(run, attempt.undo)
            raise
        self._provision_done(run, attempt)

    def _saas_op_provision_failed(self, operation, exc):
        """Failed for good: the instance is *failed* (Provision again retries); a retry
        is coming: it stays *provisioning*."""
        if operation.state == "queued":
            self.message_post(body=self.env._(
                "Provisioning attempt %(attempt)s failed at step %(step)s (%(error)s); "
                "retried at %(when)s.", attempt=operation.attempt, step=operation.step,
                error=str(exc), when=operation.next_run_at))
            return
        self.state = "failed"
        self.message_post(body=self.env._("Provisioning failed at step %(step)s: %(error)s",
                                          step=operation.step, error=str(exc)))

    def _saas_op_provision_retried(self, operation):
        self.state = "provisioning"

    def _saas_op_provision_cancelled(self, operation):
        if self.state == "provisioning":
            self.state = "failed" if self.owned_database else "draft"
        self._saas_copy_cancelled(operation)

    def _provision_recover(self, attempt):
        """A previous attempt crashed after creating things: remove them, start clean.

        A copy's restore writes the filestore under the final name while the
        database still has its pending one: when the pending database is what
        the killed attempt owned, that folder is the attempt's own (the
        restore step refuses to start when it exists).
        """
        name = self.sudo().owned_database
        if not name:
            return
        _logger.info("Instance %s: removing what a previous attempt created", self.id)
        self._provision_remove_database()
        if attempt.copy_source() and self._is_pending_database(name):
            filestore.remove_tree(self._saas_filestore(self.database_name))
        self._provision_remove_proxy()

    def _provision_clone(self, run):
        """CREATE DATABASE ... TEMPLATE under a pending name, marked, then renamed into place.

        The pending name is unique and recorded as owned (committed) *before*
        the statement, so a crash at any point leaves a database that is
        recognisably this instance's: the pending one (marked or not, since
        the crash may fall between the clone and its marker), or the renamed
        one, which carries the marker from before the rename.  The clone is
        hidden from Odoo (IS_TEMPLATE) until sanitized.
        """
        target = self._provision_names()["database"]
        template = self.template_id
        if template.state != "ready":
            raise UserError(self.env._("The template %(tpl)s is no longer locked.",
                                       tpl=template.name))
        source = template._saas_clone_source(self.server_id)
        self.server_id._check_capacity(self)
        if os.path.exists(self._saas_filestore(target)):
            raise UserError(self.env._(
                "A filestore for %(db)s already exists and was not created for this instance: "
                "it is left untouched.", db=target))
        pending = PENDING_DATABASE % (self.id, secrets.token_hex(4))
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.exists(conn, target) or pg.exists(conn, pending):
                raise UserError(self.env._(
                    "A database named %(db)s already exists and was not created for this "
                    "instance: it is left untouched.", db=target))
            if pg.connections_allowed(conn, source.database_name):
                pg.terminate_sessions(conn, source.database_name)  # fails before owning
            self._provision_mark_owned(pending)
            run.undo.append(self._provision_remove_database)
            pg.clone(conn, source.database_name, pending, owner_role=self._saas_db_owner(),
                     strategy=self.env["saas.settings"]._get("saas.clone_strategy"),
                     hidden=True)
            pg.set_comment(conn, pending, self._owner_marker())
            pg.rename(conn, pending, target)
            self._provision_mark_owned(target)
        self.sudo().write({"template_revision": source.revision,
                           "template_built_at": template.built_at})

    def _owner_marker(self):
        """The comment on the databases this instance owns (checked before any drop, and
        read by the orphan scan): its id and the manager's database."""
        return "%s%s of %s" % (OWNER_MARKER_PREFIX, self.id, self.env.cr.dbname)

    def _provision_filestore(self, run):
        source = self.template_id._saas_clone_source(self.server_id)
        filestore.clone_tree(self._saas_filestore(source.database_name),
                             self._saas_filestore(self.database_name))

    def _provision_sanitize(self, run):
        """New identity, template secrets out, template admin renamed, without password."""
        conn = psycopg2.connect(dbname=self.database_name, **self._saas_pg_params())
        try:
            sanitize.sanitize(conn, self.url, admin=(
                self.template_id.admin_login, self._admin_login()))
        finally:
            conn.close()
        with pg.maintenance(self._saas_pg_params()) as maintenance:
            pg.mark_template(maintenance, self.database_name, False)  # Odoo may serve it now

    def _provision_customize(self, run):
        """Company and customer administrator, over JSON-RPC through the serving Odoo.

        Authenticated with a one-time API key (``run.password`` is its secret,
        in memory only), granted and revoked in SQL around the calls.
        """
        login = self._admin_login()
        self.sudo().admin_login = login
        partner = self.partner_id.commercial_partner_id
        company = {"name": partner.name, "email": partner.email, "phone": partner.phone,
                   "street": partner.street, "city": partner.city, "zip": partner.zip,
                   "country_code": partner.country_id.code,
                   "currency_code": self.plan_id.currency_id.name}
        admin = {"name": self.partner_id.name, "email": self.partner_id.email,
                 "lang": self.partner_id.lang, "tz": self.partner_id.tz or self.env.user.tz}
        start = time.perf_counter()
        conn = psycopg2.connect(dbname=self.database_name, **self._saas_pg_params())
        try:
            target = customize.prepare(conn, login, company=company, admin=admin)
            key_id = customize.grant_key(conn, target.uid, run.password,
                                         KEY_CRYPT_CONTEXT.hash(run.password))
            timings = {"key": time.perf_counter() - start}
            try:
                client = customize.connect(self._saas_odoo_url(), self.host)
                timings.update(customize.customize(
                    client, self.database_name, target, run.password, company=company,
                    admin=admin))
            except Exception:
                with contextlib.suppress(psycopg2.Error):  # the clone is dropped anyway
                    customize.revoke_key(conn, key_id)
                raise
            start = time.perf_counter()
            customize.revoke_key(conn, key_id)
            timings["revoke"] = time.perf_counter() - start
        finally:
            conn.close()
        _logger.info("Instance %s customized: %s", self.id,
                     ", ".join("%s %.2fs" % item for item in timings.items()))

    def _admin_login(self):
        """The customer's administrator logs in with the customer's email."""
        return (self.partner_id.email or "admin@%s" % self.host).strip().lower()

    def _provision_proxy(self, run):
        """Write, validate and reload the nginx files, when a folder is configured."""
        settings = self._saas_proxy_settings()
        if not settings["folder"]:
            return
        for name, text in self._saas_proxy_texts(settings).items():
            path = os.path.join(settings["folder"], name)
            previous = proxy.apply(path, text, settings["validate"], settings["reload"])
            run.undo.append(lambda path=path, previous=previous: proxy.restore(
                path, previous, settings["reload"]))

    def _saas_proxy_texts(self, settings):
        """``{file name: nginx text}``: the wildcard file, and the custom domain's if any."""
        server = self._saas_server()
        public = {"scheme": server.public_scheme, "port": server.public_port}
        texts = {proxy.WILDCARD_FILE: proxy.render_wildcard(
            self._saas_params()["base_domain"], settings["upstream"],
            settings["websocket_upstream"], settings["certificate"], settings["key"], **public)}
        if self.custom_domain:
            texts[proxy.INSTANCE_FILE % self.subdomain] = proxy.render_custom_domain(
                self.custom_domain, self.host,
                settings["certificate_pattern"].format(domain=self.custom_domain),
                settings["key_pattern"].format(domain=self.custom_domain), **public)
        return texts

    def _provision_names(self):
        """Check that the names still follow the settings before anything is created."""
        params = self._saas_params()
        expected = naming.database_name(self.subdomain, params["base_domain"], params["routing"])
        if expected != self.database_name:
            raise UserError(self.env._(
                "The base domain or routing mode changed since this instance was created: "
                "its database would be %(new)s, not %(old)s. Change the subdomain to refresh.",
                new=expected, old=self.database_name))
        return {"database": self.database_name}

    def _provision_mark_owned(self, database):
        """Record durably (committed) which database name this instance owns, if any."""
        self.sudo().owned_database = database or False
        self._commit()

    def _provision_remove_database(self):
        """Drop the database recorded as owned, if it is provably this instance's.

        A final name must carry this instance's marker.  A pending name (see
        :meth:`_provision_clone`) is dropped marked or not, and so is the
        instance's final name when it carries the marker: the crash came after
        the rename.  A ``CREATE DATABASE`` of the pending name that a killed
        worker left running in PostgreSQL is ended first: it would otherwise
        create the database after this looked.
        """
        name = self.sudo().owned_database
        if not name:
            return
        pending = self._is_pending_database(name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pending:
                pg.end_creation(conn, name)
            self._drop_owned(conn, name, unmarked_ok=pending)
            if pending and pg.comment(conn, self.database_name) == self._owner_marker():
                self._drop_owned(conn, self.database_name)
        if not pending:
            filestore.remove_tree(self._saas_filestore(name))
        self._provision_mark_owned(False)

    def _is_pending_database(self, name):
        match = PENDING_DATABASE_RE.fullmatch(name)
        return bool(match) and int(match.group(1)) == self.id

    def _drop_owned(self, conn, name, unmarked_ok=False):
        if not pg.exists(conn, name):
            return
        marker = pg.comment(conn, name)
        if marker != self._owner_marker() and not (unmarked_ok and marker is None):
            raise UserError(self.env._(
                "%(db)s does not carry this instance's marker: it is not dropped.", db=name))
        self._saas_release(name)
        pg.drop(conn, name)

    def _provision_remove_proxy(self):
        settings = self._saas_proxy_settings()
        if settings["folder"] and self.custom_domain:
            proxy.restore(os.path.join(settings["folder"], proxy.INSTANCE_FILE % self.subdomain),
                          None, settings["reload"])

    def _provision_undo(self, run, undo):
        """Replay the undo list, newest first; problems become a failed step."""
        errors = []
        for action in reversed(undo):
            try:
                action()
            except Exception as undo_exc:  # every undo is tried
                errors.append(str(undo_exc))
        if errors:
            run.steps.append({"name": "undo", "state": "failed", "seconds": 0,
                              "error": "; ".join(errors)})

    def _provision_done(self, run, attempt):
        self.state = "active"
        self.message_post(body=self.env._("Instance ready at %(url)s in %(sec).2f s.",
                                          url=self.url, sec=run.seconds()))
        self._commit()  # the instance is live: nothing after this may undo it
        if attempt.copy_source():
            self._saas_copy_done(attempt)
        else:
            self._provision_welcome()
        self._provision_first_measures()

    def _provision_welcome(self):
        try:
            with self.env.cr.savepoint():
                self._send_welcome()
        except Exception as exc:  # the link can be sent again; the instance stays active
            _logger.error("Instance %s: the welcome mail failed: %s", self.id, exc)
            self.message_post(body=self.env._(
                "The welcome mail could not be prepared (%(error)s). Use \"Send Welcome "
                "Link\" once it is fixed.", error=str(exc)))

    def _provision_first_measures(self):
        """Users, storage and one health check now, so that a new instance does not show
        0 users, 0 MB and an unknown health until the nightly and hourly crons.

        Best-effort: the instance is live whatever happens here.  A failure is noted
        in its chatter (the crons measure again), and logged at INFO only: it is the
        crons' business to report an instance that stays unmeasurable.
        """
        measures = ((self._refresh_usage, self.env._("Usage could not be measured yet")),
                    (self._check_health_once, self.env._("The first health check failed")))
        for measure, failure in measures:
            try:
                with self.env.cr.savepoint():
                    measure()
            except Exception as exc:  # recorded; the crons measure again
                _logger.info("Instance %s: %s: %s", self.id, failure, exc)
                self.message_post(body=self.env._(
                    "%(failure)s (%(error)s); the scheduled checks will try again.",
                    failure=failure, error=str(exc)))

    def _check_health_once(self):
        """One health check of this instance, recorded as the hourly cron records its
        own (saas_instance_health.py)."""
        settings = self._health_settings()
        by_id, now = self._check_health_now(settings)
        self._record_health(by_id[self.id], now, settings["alert_after"])
