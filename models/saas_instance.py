import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg2

from odoo import api, fields, models, sql_db
from odoo.exceptions import UserError, ValidationError
from odoo.modules.registry import Registry
from odoo.tools import SQL, config

from ..engine import customize, filestore, naming, pg, proxy, sanitize

_logger = logging.getLogger(__name__)

INSTANCE_STATES = [
    ("draft", "Draft"),
    ("provisioning", "Provisioning"),
    ("active", "Active"),
    ("suspended", "Suspended"),
    ("terminated", "Terminated"),
    ("failed", "Failed"),
]
#: States in which the client database may not exist yet, so names may change.
RENAMEABLE_STATES = ("draft", "failed")
#: Provisioning steps, in order; each is a method ``_provision_<step>``.
PROVISION_STEPS = ("clone", "filestore", "sanitize", "customize", "proxy")
#: First key of the advisory locks that keep two cron workers off one instance.
PROVISION_LOCK_KEY = 0x5AA5
#: Written only by saas_manager's own code (as superuser), never by a user or RPC:
#: they decide which database is created, dropped or served.
PROTECTED_FIELDS = frozenset({
    "state", "owned_database", "database_name", "host", "url", "subdomain_released",
    "admin_login", "admin_password_encrypted", "provision_step", "provision_timings",
    "provision_seconds", "last_error", "user_count", "storage_mb", "health_status",
    "health_checked_at", "health_response_ms", "template_revision", "template_built_at",
})


@dataclass
class ProvisionRun:
    """What one provisioning attempt carries from step to step."""

    password: str
    password_hash: object  # Future of the pbkdf2 hash, computed while cloning
    undo: list = field(default_factory=list)


class SaasInstance(models.Model):
    """One client database, reached at ``<subdomain>.<base domain>``."""

    _name = "saas.instance"
    _description = "SaaS Instance"
    _inherit = ["mail.thread", "mail.activity.mixin", "saas.secret.mixin", "saas.server.mixin"]
    _saas_protected_fields = PROTECTED_FIELDS
    _order = "create_date desc, id desc"

    name = fields.Char(required=True, tracking=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, index=True, tracking=True)
    commercial_partner_id = fields.Many2one(
        related="partner_id.commercial_partner_id", store=True, index=True)
    subdomain = fields.Char(required=True, tracking=True, copy=False)
    subdomain_released = fields.Boolean(
        default=False, readonly=True, copy=False,
        help="A terminated instance whose subdomain may be given to a new instance.")
    database_name = fields.Char(
        compute="_compute_location", store=True, readonly=True, precompute=True, copy=False)
    host = fields.Char(compute="_compute_location", store=True, readonly=True, precompute=True)
    url = fields.Char(string="URL", compute="_compute_location", store=True, readonly=True,
                      precompute=True)
    template_id = fields.Many2one("saas.template", required=True, tracking=True,
                                  ondelete="restrict")
    template_revision = fields.Integer(readonly=True, copy=False,
                                       help="Revision of the template this instance was cloned "
                                            "from (incremented at each lock).")
    template_built_at = fields.Datetime(readonly=True, copy=False,
                                        help="When that template revision was built.")
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict")
    subscription_id = fields.Many2one(
        "saas.subscription", string="Current Subscription", copy=False,
        domain="[('instance_id', '=', id)]")
    subscription_ids = fields.One2many("saas.subscription", "instance_id",
                                       string="Subscriptions")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    state = fields.Selection(INSTANCE_STATES, default="draft", required=True, readonly=True,
                             tracking=True, copy=False, index=True)
    provision_step = fields.Char(
        readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="Step being run, or the step that failed.")
    provision_timings = fields.Text(
        readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="Seconds spent in each provisioning step.")
    provision_seconds = fields.Float(string="Provisioning Time (s)", readonly=True, copy=False,
                                     digits=(16, 2))
    last_error = fields.Text(readonly=True, copy=False, groups="saas_manager.group_saas_user")
    user_count = fields.Integer(string="Users Used", readonly=True, copy=False)
    user_limit = fields.Integer(related="plan_id.max_users", string="Users Allowed")
    storage_mb = fields.Float(string="Storage Used (MB)", readonly=True, copy=False,
                              digits=(16, 1))
    storage_limit_gb = fields.Integer(related="plan_id.storage_gb", string="Storage Allowed (GB)")
    health_status = fields.Selection(
        [("unknown", "Unknown"), ("up", "Up"), ("down", "Down")],
        default="unknown", readonly=True, copy=False)
    health_checked_at = fields.Datetime(string="Last Health Check", readonly=True, copy=False)
    health_response_ms = fields.Integer(string="Response Time (ms)", readonly=True, copy=False)
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 default=lambda self: self.env.company)
    custom_domain = fields.Char(
        tracking=True, copy=False,
        help="The customer's own domain (e.g. erp.acme.com), served besides the subdomain.")
    owned_database = fields.Char(
        readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="Recorded before the client database is created: the only database name "
             "saas_manager will ever drop for this instance.")
    admin_login = fields.Char(string="Customer Admin Login", readonly=True, copy=False)
    admin_password_encrypted = fields.Char(copy=False, groups="saas_manager.group_saas_manager")
    admin_password = fields.Char(
        string="Customer Admin Password", compute="_compute_admin_password",
        compute_sudo=True,
        groups="saas_manager.group_saas_manager",
        help="Generated at provisioning, stored encrypted with the server's key.")

    @api.depends("subdomain")
    def _compute_location(self):
        params = self._saas_params()
        for instance in self:
            try:
                naming.check_subdomain(instance.subdomain)
                host = naming.host_for(instance.subdomain, params["base_domain"])
                database = naming.database_name(
                    instance.subdomain, params["base_domain"], params["routing"])
            except naming.NamingError:
                host = database = False  # _check_subdomain reports the reason
            instance.host = host
            instance.database_name = database
            instance.url = host and "https://%s" % host

    @api.depends("admin_password_encrypted")
    def _compute_admin_password(self):
        self._decrypt_into("admin_password_encrypted", "admin_password")

    def _compute_subscription_count(self):
        counts = dict(self.env["saas.subscription"]._read_group(
            [("instance_id", "in", self.ids)], ["instance_id"], ["__count"]))
        for instance in self:
            instance.subscription_count = counts.get(instance, 0)

    # -- configuration -------------------------------------------------------
    @api.model
    def _saas_params(self):
        """Base domain, routing mode and extra reserved names from the settings."""
        get = self.env["ir.config_parameter"].sudo().get_param
        reserved = get("saas.reserved_subdomains", "") or ""
        return {
            "base_domain": (get("saas.base_domain", "") or "").strip().lower(),
            "routing": get("saas.routing_mode", naming.ROUTING_HOST) or naming.ROUTING_HOST,
            "reserved": {name.strip().lower() for name in reserved.split(",") if name.strip()},
        }

    @api.model
    def _reserved_names(self):
        """Subdomains and database names that no customer may take."""
        templates = self.env["saas.template"].sudo().with_context(active_test=False).search(
            [("database_name", "!=", False)])
        reserved = set(self._saas_params()["reserved"])
        reserved.update(templates.mapped("database_name"))
        reserved.add(self.env.cr.dbname)
        return reserved

    # -- constraints ---------------------------------------------------------
    @api.constrains("subdomain", "database_name", "subdomain_released")
    def _check_subdomain(self):
        reserved = self._reserved_names()
        params = self._saas_params()
        if not params["base_domain"]:
            raise ValidationError(self.env._(
                "Set the base domain in SaaS Manager > Configuration > Settings first."))
        for instance in self:
            try:
                naming.check_subdomain(instance.subdomain, reserved)
                naming.database_name(instance.subdomain, params["base_domain"], params["routing"])
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
            if instance.database_name in reserved:
                raise ValidationError(self.env._(
                    "The database name %(name)r is reserved.", name=instance.database_name))

    @api.constrains("custom_domain")
    def _check_custom_domain(self):
        base_domain = self._saas_params()["base_domain"]
        for instance in self.filtered("custom_domain"):
            try:
                naming.check_base_domain(instance.custom_domain)
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
            if base_domain and (instance.custom_domain == base_domain
                                or instance.custom_domain.endswith("." + base_domain)):
                raise ValidationError(self.env._(
                    "A custom domain cannot be under the base domain %(base)s: it would take "
                    "another instance's traffic.", base=base_domain))
            if self.sudo().search_count([("id", "!=", instance.id),
                                         ("custom_domain", "=", instance.custom_domain),
                                         ("state", "!=", "terminated")]):
                raise ValidationError(self.env._("The domain %(domain)s is already used.",
                                                 domain=instance.custom_domain))

    @api.model
    def _check_subdomain_free(self, subdomain, exclude_ids=()):
        """Refuse a subdomain (or its database name) held by an unreleased instance.

        Checked before the INSERT/UPDATE so the operator gets a clear message;
        the partial unique indexes of :meth:`init` still settle races.
        """
        params = self._saas_params()
        try:
            database = naming.database_name(subdomain, params["base_domain"], params["routing"])
        except naming.NamingError:
            return  # _check_subdomain reports it with the full reason
        clash = self.with_context(active_test=False).sudo().search([
            ("id", "not in", list(exclude_ids)), ("subdomain_released", "=", False),
            "|", ("subdomain", "=", subdomain), ("database_name", "=", database),
        ], limit=1)
        if clash:
            raise ValidationError(self.env._(
                "The subdomain %(sub)r is already used by instance %(name)s.",
                sub=subdomain, name=clash.name))

    def init(self):
        """Unique subdomain, database and custom domain among live instances, race-proof."""
        self.env.cr.execute(SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS saas_instance_custom_domain_live_uniq "
            "ON saas_instance (custom_domain) WHERE state <> 'terminated'"))
        for column in ("subdomain", "database_name"):
            self.env.cr.execute(SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS %s ON saas_instance (%s) "
                "WHERE subdomain_released IS NOT TRUE",
                SQL.identifier("saas_instance_%s_live_uniq" % column), SQL.identifier(column)))

    # -- ORM -------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._saas_check_protected(vals, creating=True)
            if vals.get("subdomain"):
                self._check_subdomain_free(vals["subdomain"])
        return super().create(vals_list)

    def write(self, vals):
        self._saas_check_protected(vals)
        if "subdomain" in vals:
            if self.sudo().filtered("owned_database"):
                raise UserError(self.env._(
                    "This instance still owns a database from an earlier attempt: retry the "
                    "provisioning (which removes it) before changing the subdomain."))
            if self.filtered(lambda i: i.state not in RENAMEABLE_STATES):
                raise UserError(self.env._(
                    "The subdomain of an instance whose database exists cannot be changed."))
            if vals["subdomain"]:
                self._check_subdomain_free(vals["subdomain"], exclude_ids=self.ids)
        return super().write(vals)

    # -- actions -----------------------------------------------------------------
    def action_release_subdomain(self):
        """Let a new instance take the subdomain of this terminated one."""
        self.check_access("write")
        if self.filtered(lambda i: i.state != "terminated"):
            raise UserError(self.env._("Only terminated instances can release their subdomain."))
        self.sudo().subdomain_released = True
        for instance in self:
            instance.message_post(body=self.env._("Subdomain %(sub)s released.",
                                                  sub=instance.subdomain))
        return True

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_subscription")
        action["domain"] = [("instance_id", "=", self.id)]
        action["context"] = {"default_instance_id": self.id,
                             "default_partner_id": self.partner_id.id,
                             "default_plan_id": self.plan_id.id}
        return action

    # -- provisioning ----------------------------------------------------------
    def action_provision(self):
        """Queue the provisioning: the request returns at once, a cron does the work."""
        self.check_access("write")
        for instance in self:
            if instance.state not in RENAMEABLE_STATES:
                raise UserError(self.env._("%(name)s is already provisioned.",
                                           name=instance.name))
            if instance.template_id.state != "ready":
                raise UserError(self.env._(
                    "The template %(tpl)s is not ready (locked) yet.",
                    tpl=instance.template_id.name))
        self.sudo().write({"state": "provisioning", "provision_step": "queued",
                           "last_error": False})
        self.env.ref("saas_manager.ir_cron_saas_provision").sudo()._trigger()
        return True

    @api.model
    def _cron_provision(self, batch=5):
        """Provision queued instances, a few per run, one transaction each."""
        queued = self.sudo().search([("state", "=", "provisioning")], order="id", limit=batch)
        done = 0
        for instance in queued:
            if not instance._provision_lock():
                continue  # another worker has it
            try:
                instance._provision()
                self._commit()
                done += 1
            finally:
                instance._provision_unlock()
        remaining = self.sudo().search_count([("state", "=", "provisioning")])
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return True

    def _commit(self):
        """Commit outside tests (a test's transaction is rolled back at its end)."""
        if not self._testing():
            # A cron that provisions databases commits per instance: an instance's
            # outcome (and its recorded ownership) must survive the next one's crash.
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _provision_lock(self):
        """Session-level advisory lock: survives the commits made while provisioning."""
        self.env.cr.execute("SELECT pg_try_advisory_lock(%s, %s)", [PROVISION_LOCK_KEY, self.id])
        return self.env.cr.fetchone()[0]

    def _provision_unlock(self):
        """Release the lock; an aborted transaction is rolled back first (outside tests)."""
        aborted = psycopg2.extensions.TRANSACTION_STATUS_INERROR
        if self.env.cr._cnx.get_transaction_status() == aborted and not self._testing():
            self.env.cr.rollback()
        self.env.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [PROVISION_LOCK_KEY, self.id])

    @staticmethod
    def _testing():
        return getattr(threading.current_thread(), "testing", False)

    def _provision(self):
        """Run every step; on failure undo what this provisioning created. True on success."""
        self.ensure_one()
        self.invalidate_recordset()
        if self.state != "provisioning":
            return False
        timings = []
        password = customize.new_password()
        crypt = self.env["res.users"]._crypt_context()
        with ThreadPoolExecutor(max_workers=1) as hasher:
            # The one expensive hash runs on the other core while PostgreSQL clones.
            run = ProvisionRun(password, hasher.submit(crypt.hash, password))
            try:
                self._provision_recover()
                for step in PROVISION_STEPS:
                    self.sudo().provision_step = step
                    start = time.perf_counter()
                    getattr(self, "_provision_%s" % step)(run)
                    timings.append((step, time.perf_counter() - start))
            except Exception as exc:  # any failure must be undone and shown
                if isinstance(exc, psycopg2.Error) and not self._testing():
                    self.env.cr.rollback()  # the manager's own transaction may be aborted
                    self.invalidate_recordset()
                self._provision_failed(exc, run.undo, timings)
                return False
        self._provision_done(timings)
        return True

    def _provision_recover(self):
        """A previous attempt crashed after creating things: remove them, start clean."""
        if self.sudo().owned_database:
            _logger.info("Instance %s: removing what a previous attempt created", self.id)
            self._provision_remove_database()
            self._provision_remove_proxy()

    def _provision_clone(self, run):
        """CREATE DATABASE ... TEMPLATE, hidden from Odoo until sanitized.

        The name is recorded as owned (committed) before the statement, and the
        new database is tagged with this instance's marker: only a database
        carrying that marker is ever dropped.
        """
        target = self._provision_names()["database"]
        template = self.template_id
        if template.state != "ready":
            raise UserError(self.env._("The template %(tpl)s is no longer locked.",
                                       tpl=template.name))
        if os.path.exists(self._saas_filestore(target)):
            raise UserError(self.env._(
                "A filestore for %(db)s already exists and was not created for this instance: "
                "it is left untouched.", db=target))
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.exists(conn, target):
                raise UserError(self.env._(
                    "A database named %(db)s already exists and was not created for this "
                    "instance: it is left untouched.", db=target))
            self._provision_mark_owned(target)
            if pg.connections_allowed(conn, template.database_name):
                pg.terminate_sessions(conn, template.database_name)
            try:
                pg.clone(conn, template.database_name, target, owner_role=self._saas_db_owner(),
                         strategy=self._saas_param("saas.clone_strategy", pg.DEFAULT_STRATEGY),
                         hidden=True)
            except pg.PgError:
                self._provision_mark_owned(False)  # nothing of ours exists under that name
                raise
            pg.set_comment(conn, target, self._owner_marker())
            run.undo.append(self._provision_remove_database)
        self.sudo().write({"template_revision": template.revision,
                           "template_built_at": template.built_at})

    def _owner_marker(self):
        return "saas_manager instance %s of %s" % (self.id, self.env.cr.dbname)

    def _provision_filestore(self, run):
        filestore.clone_tree(self._saas_filestore(self.template_id.database_name),
                             self._saas_filestore(self.database_name))

    def _provision_sanitize(self, run):
        """New identity, template secrets out, template admin password replaced."""
        conn = psycopg2.connect(dbname=self.database_name, **self._saas_pg_params())
        try:
            sanitize.sanitize(conn, self.url, admin=(
                self.template_id.admin_login, self._admin_login(), run.password_hash.result()))
        finally:
            conn.close()
        with pg.maintenance(self._saas_pg_params()) as maintenance:
            pg.mark_template(maintenance, self.database_name, False)  # Odoo may serve it now

    def _provision_customize(self, run):
        """Company and customer administrator, over JSON-RPC through the serving Odoo."""
        login = self._admin_login()
        self.sudo().write({"admin_login": login,
                           "admin_password_encrypted": self._encrypt(run.password)})
        partner = self.partner_id.commercial_partner_id
        client = customize.connect(self._provision_server_url(), self.host)
        timings = customize.customize(
            client, self.database_name, login, run.password,
            company={"name": partner.name, "email": partner.email, "phone": partner.phone,
                     "street": partner.street, "city": partner.city, "zip": partner.zip,
                     "country_code": partner.country_id.code,
                     "currency_code": self.plan_id.currency_id.name},
            admin={"name": self.partner_id.name, "email": self.partner_id.email,
                   "lang": self.partner_id.lang,
                   "tz": self.partner_id.tz or self.env.user.tz})
        _logger.info("Instance %s customized: %s", self.id,
                     ", ".join("%s %.2fs" % item for item in timings.items()))

    def _admin_login(self):
        """The customer's administrator logs in with the customer's email."""
        return (self.partner_id.email or "admin@%s" % self.host).strip().lower()

    def _provision_proxy(self, run):
        """Write, validate and reload the nginx files, when a folder is configured."""
        settings = self._proxy_settings()
        if not settings["folder"]:
            return
        texts = {proxy.WILDCARD_FILE: proxy.render_wildcard(
            self._saas_params()["base_domain"], settings["upstream"],
            settings["websocket_upstream"], settings["certificate"], settings["key"])}
        if self.custom_domain:
            texts[proxy.INSTANCE_FILE % self.subdomain] = proxy.render_custom_domain(
                self.custom_domain, self.host,
                settings["certificate_pattern"].format(domain=self.custom_domain),
                settings["key_pattern"].format(domain=self.custom_domain))
        for name, text in texts.items():
            path = os.path.join(settings["folder"], name)
            previous = proxy.apply(path, text, settings["validate"], settings["reload"])
            run.undo.append(lambda path=path, previous=previous: proxy.restore(
                path, previous, settings["reload"]))

    def _proxy_settings(self):
        """From odoo.conf, never from the database: these name commands to run and
        files to write on the server."""
        get = config.get
        return {
            "folder": get("saas_proxy_conf_dir") or "",
            "upstream": get("saas_proxy_upstream")
            or "127.0.0.1:%s" % (get("http_port") or 8069),
            "websocket_upstream": get("saas_proxy_websocket_upstream")
            or "127.0.0.1:%s" % (get("gevent_port") or 8072),
            "certificate": get("saas_proxy_certificate") or "",
            "key": get("saas_proxy_certificate_key") or "",
            "certificate_pattern": get("saas_proxy_domain_certificate")
            or "/etc/letsencrypt/live/{domain}/fullchain.pem",
            "key_pattern": get("saas_proxy_domain_certificate_key")
            or "/etc/letsencrypt/live/{domain}/privkey.pem",
            "validate": get("saas_proxy_validate_command") or "nginx -t",
            "reload": get("saas_proxy_reload_command") or "nginx -s reload",
        }

    def _provision_server_url(self):
        """The Odoo server that serves client databases (odoo.conf; default: this one).

        From the server configuration, not the database: the customer's new
        password is sent there."""
        return config.get("saas_odoo_url") or "http://127.0.0.1:%s" % (
            config.get("http_port") or 8069)

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
        """Drop the database recorded as owned, if it carries this instance's marker."""
        name = self.sudo().owned_database
        if not name:
            return
        Registry.delete(name)
        sql_db.close_db(name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.exists(conn, name):
                if pg.comment(conn, name) != self._owner_marker():
                    raise UserError(self.env._(
                        "%(db)s does not carry this instance's marker: it is not dropped.",
                        db=name))
                pg.drop(conn, name)
        filestore.remove_tree(self._saas_filestore(name))
        self._provision_mark_owned(False)

    def _provision_remove_proxy(self):
        settings = self._proxy_settings()
        if settings["folder"] and self.custom_domain:
            proxy.restore(os.path.join(settings["folder"], proxy.INSTANCE_FILE % self.subdomain),
                          None, settings["reload"])

    def _provision_failed(self, exc, undo, timings):
        _logger.error("Provisioning instance %s (%s) failed at step %s: %s",
                      self.id, self.database_name, self.provision_step, exc)
        errors = []
        for action in reversed(undo):
            try:
                action()
            except Exception as undo_exc:
                errors.append(str(undo_exc))
        message = str(exc) + ("\nCleanup problems: %s" % "; ".join(errors) if errors else "")
        self.sudo().write({"state": "failed", "last_error": message,
                           "provision_timings": self._format_timings(timings),
                           "admin_password_encrypted": False})
        self.message_post(body=self.env._("Provisioning failed at step %(step)s: %(error)s",
                                          step=self.provision_step, error=str(exc)))

    def _provision_done(self, timings):
        self.sudo().write({"state": "active", "provision_step": False, "last_error": False,
                           "provision_timings": self._format_timings(timings),
                           "provision_seconds": sum(seconds for _step, seconds in timings)})
        self.message_post(body=self.env._("Instance ready at %(url)s in %(sec).2f s.",
                                          url=self.url, sec=self.provision_seconds))

    @staticmethod
    def _format_timings(timings):
        return "\n".join("%-10s %6.3f s" % (step, seconds) for step, seconds in timings)
