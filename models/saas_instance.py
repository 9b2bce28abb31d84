import logging
import os
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg2

from odoo import api, fields, models, sql_db
from odoo.exceptions import UserError, ValidationError
from odoo.modules.registry import Registry
from odoo.tools import SQL, config

from ..engine import backup, customize, filestore, health, naming, pg, proxy, sanitize, usage

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
#: Where a clone is created before it is marked and renamed into place (instance id, random).
PENDING_DATABASE = "saas_tmp_%d_%s"
PENDING_DATABASE_RE = re.compile(r"saas_tmp_(\d+)_[0-9a-f]{8}")
#: First key of the advisory locks that keep two cron workers off one instance.
PROVISION_LOCK_KEY = 0x5AA5
#: Written only by saas_manager's own code (as superuser), never by a user or RPC:
#: they decide which database is created, dropped or served.
PROTECTED_FIELDS = frozenset({
    "state", "owned_database", "database_name", "host", "url", "subdomain_released",
    "admin_login", "provision_step", "provision_timings",
    "provision_seconds", "last_error", "user_count", "storage_mb", "health_status",
    "health_checked_at", "health_response_ms", "template_revision", "template_built_at",
    "suspension_reason", "suspended_on", "terminated_on", "backup_dump_path",
    "backup_filestore_path", "database_mb", "filestore_mb", "usage_checked_at",
    "user_limit_exceeded", "storage_limit_exceeded", "limit_exceeded_since",
    "health_failures", "health_history", "health_error", "subscription_id",
})
SUSPENSION_REASONS = [
    ("manual", "Suspended by the operator"),
    ("unpaid", "Unpaid invoice"),
    ("expired", "Subscription expired"),
    ("cancelled", "Subscription cancelled"),
    ("user_limit", "User limit exceeded"),
    ("storage_limit", "Storage limit exceeded"),
]
#: Health checks remembered per instance (newest last), one character each.
HEALTH_HISTORY = 48
HEALTH_UP, HEALTH_DOWN = "+", "-"


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
    _inherit = ["mail.thread", "mail.activity.mixin", "saas.server.mixin", "saas.lifecycle.mixin"]
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
        help="A terminated instance whose subdomain may be given to a new instance.",
        groups="saas_manager.group_saas_user")
    database_name = fields.Char(
        compute="_compute_location", store=True, readonly=True, precompute=True, copy=False,
        groups="saas_manager.group_saas_user")
    host = fields.Char(compute="_compute_location", store=True, readonly=True, precompute=True)
    url = fields.Char(string="URL", compute="_compute_location", store=True, readonly=True,
                      precompute=True)
    template_id = fields.Many2one("saas.template", required=True, tracking=True,
                                  ondelete="restrict")
    template_revision = fields.Integer(readonly=True, copy=False,
                                       help="Revision of the template this instance was cloned "
                                            "from (incremented at each lock).",
                                            groups="saas_manager.group_saas_user")
    template_built_at = fields.Datetime(readonly=True, copy=False,
                                        help="When that template revision was built.",
                                        groups="saas_manager.group_saas_user")
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict")
    subscription_id = fields.Many2one(
        "saas.subscription", string="Current Subscription", copy=False, readonly=True,
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
                                     digits=(16, 2), groups="saas_manager.group_saas_user")
    last_error = fields.Text(readonly=True, copy=False, groups="saas_manager.group_saas_user")
    user_id = fields.Many2one("res.users", string="Responsible", tracking=True,
                              default=lambda self: self.env.user,
                              help="Gets the health alerts of this instance.",
                              groups="saas_manager.group_saas_user")
    suspension_reason = fields.Selection(SUSPENSION_REASONS, readonly=True, copy=False,
                                         tracking=True)
    suspended_on = fields.Datetime(readonly=True, copy=False)
    terminated_on = fields.Datetime(readonly=True, copy=False)
    backup_dump_path = fields.Char(string="Final Backup (database)", readonly=True, copy=False,
                                   groups="saas_manager.group_saas_manager")
    backup_filestore_path = fields.Char(string="Final Backup (filestore)", readonly=True,
                                        copy=False, groups="saas_manager.group_saas_manager")
    user_count = fields.Integer(string="Users Used", readonly=True, copy=False)
    user_limit = fields.Integer(related="plan_id.max_users", string="Users Allowed")
    database_mb = fields.Float(string="Database (MB)", readonly=True, copy=False,
                               digits=(16, 1), groups="saas_manager.group_saas_user")
    filestore_mb = fields.Float(string="Filestore (MB)", readonly=True, copy=False,
                                digits=(16, 1), groups="saas_manager.group_saas_user")
    storage_mb = fields.Float(string="Storage Used (MB)", readonly=True, copy=False,
                              digits=(16, 1), help="Database plus filestore.")
    storage_limit_gb = fields.Integer(related="plan_id.storage_gb", string="Storage Allowed (GB)")
    usage_checked_at = fields.Datetime(string="Usage Measured", readonly=True, copy=False)
    user_limit_exceeded = fields.Boolean(readonly=True, copy=False)
    storage_limit_exceeded = fields.Boolean(readonly=True, copy=False)
    limit_exceeded_since = fields.Date(readonly=True, copy=False)
    health_status = fields.Selection(
        [("unknown", "Unknown"), ("up", "Up"), ("down", "Down")],
        default="unknown", readonly=True, copy=False)
    health_checked_at = fields.Datetime(string="Last Health Check", readonly=True, copy=False,
                                        groups="saas_manager.group_saas_user")
    health_response_ms = fields.Integer(string="Response Time (ms)", readonly=True, copy=False,
                                        groups="saas_manager.group_saas_user")
    health_failures = fields.Integer(string="Consecutive Failures", readonly=True, copy=False,
                                     groups="saas_manager.group_saas_user")
    health_history = fields.Char(readonly=True, copy=False,
                                 help="Last checks, oldest first: + up, - down.",
                                 groups="saas_manager.group_saas_user")
    health_error = fields.Char(string="Last Health Error", readonly=True, copy=False,
                               groups="saas_manager.group_saas_user")
    company_id = fields.Many2one("res.company", required=True, index=True,
                                 default=lambda self: self.env.company)
    custom_domain = fields.Char(
        tracking=True, copy=False,
        help="The customer's own domain (e.g. erp.acme.com), served besides the subdomain.")
    owned_database = fields.Char(
        readonly=True, copy=False, groups="saas_manager.group_saas_user",
        help="Recorded before the client database is created: the only database name "
             "saas_manager will ever drop for this instance.")
    admin_login = fields.Char(
        string="Customer Admin Login", readonly=True, copy=False,
        help="The customer's administrator. Its password is never stored: the customer "
             "chooses it through the single-use welcome link.")

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
            instance.url = host and self._saas_instance_url(host)

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
                naming.check_domain(instance.custom_domain, "custom domain")
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

    #: Live names are unique, race-proof: the second of two concurrent creates waits for
    #: the first and then fails on one of these.  They are EXCLUDE constraints (btree, =),
    #: not partial unique indexes, because only a *constraint* named in _sql_constraints
    #: gets its message shown: Odoo (odoo/service/model.py, _as_validation_error) maps a
    #: violated constraint's name to that message, and a unique index's name is not one.
    _sql_constraints = [
        ("subdomain_live_excl",
         "EXCLUDE USING btree (subdomain WITH =) WHERE (subdomain_released IS NOT TRUE)",
         "This subdomain is already used by another instance (it was taken a moment ago)."),
        ("database_name_live_excl",
         "EXCLUDE USING btree (database_name WITH =) WHERE (subdomain_released IS NOT TRUE)",
         "This database name is already used by another instance (it was taken a moment "
         "ago)."),
        ("custom_domain_live_excl",
         "EXCLUDE USING btree (custom_domain WITH =) WHERE (state <> 'terminated')",
         "This custom domain is already used by another instance."),
    ]
    #: The partial unique indexes that the constraints above replace (earlier versions).
    _OLD_UNIQUE_INDEXES = ("saas_instance_subdomain_live_uniq",
                           "saas_instance_database_name_live_uniq",
                           "saas_instance_custom_domain_live_uniq")

    def init(self):
        """Drop the old partial unique indexes: the EXCLUDE constraints of
        ``_sql_constraints`` (added by Odoo right after the models' init) replace them."""
        result = super().init()
        for index in self._OLD_UNIQUE_INDEXES:
            self.env.cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(index)))
        return result

    # -- ORM -------------------------------------------------------------------
    @api.model
    def _saas_check_names(self, vals):
        """Refuse a malformed subdomain or custom domain in ``vals``, before any query.

        Only the form is checked here (no database needed): a NUL byte or a
        non-text value gets this message rather than psycopg2's "A string
        literal cannot contain NUL" from the uniqueness search.  Reserved
        names, the base domain and uniqueness follow in create/write and in
        the constraints.
        """
        try:
            if "subdomain" in vals:
                naming.check_subdomain(vals["subdomain"])
            domain = vals.get("custom_domain", False)
            if domain is not False and domain is not None and domain != "":
                naming.check_domain(domain, "custom domain")
        except naming.NamingError as exc:
            raise ValidationError(str(exc)) from exc

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._saas_check_names(vals)
            self._saas_check_protected(vals, creating=True)
            if vals.get("subdomain"):
                self._check_subdomain_free(vals["subdomain"])
        return super().create(vals_list)

    def write(self, vals):
        self._saas_check_names(vals)
        self._saas_check_protected(vals)
        if "plan_id" in vals and not self.env.su and self.filtered("subscription_id"):
            raise UserError(self.env._(
                "This instance's plan follows its subscription: use Change Plan there."))
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
                instance._refresh_snapshot()  # what the lock's previous holder committed
                instance._provision()
                self._commit()
                done += 1
            finally:
                instance._provision_unlock()
        remaining = self.sudo().search_count([("state", "=", "provisioning")])
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return True

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
            if pg.connections_allowed(conn, template.database_name):
                pg.terminate_sessions(conn, template.database_name)  # fails before owning
            self._provision_mark_owned(pending)
            run.undo.append(self._provision_remove_database)
            pg.clone(conn, template.database_name, pending, owner_role=self._saas_db_owner(),
                     strategy=self._saas_param("saas.clone_strategy", pg.DEFAULT_STRATEGY),
                     hidden=True)
            pg.set_comment(conn, pending, self._owner_marker())
            pg.rename(conn, pending, target)
            self._provision_mark_owned(target)
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
        self.sudo().admin_login = login
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

    def _provision_remove_database(self, commit=True):
        """Drop the database recorded as owned, if it is provably this instance's.

        A final name must carry this instance's marker.  A pending name (see
        :meth:`_provision_clone`) is dropped marked or not, and so is the
        instance's final name when it carries the marker: the crash came after
        the rename.  ``commit=False`` leaves the ownership change to the
        caller's transaction (a cron step runs inside a savepoint, which a
        commit would end).
        """
        name = self.sudo().owned_database
        if not name:
            return
        pending = self._is_pending_database(name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            self._drop_owned(conn, name, unmarked_ok=pending)
            if pending and pg.comment(conn, self.database_name) == self._owner_marker():
                self._drop_owned(conn, self.database_name)
        if not pending:
            filestore.remove_tree(self._saas_filestore(name))
        if commit:
            self._provision_mark_owned(False)
        else:
            self.sudo().owned_database = False

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
        Registry.delete(name)
        sql_db.close_db(name)
        pg.drop(conn, name)

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
                           "provision_timings": self._format_timings(timings)})
        self.message_post(body=self.env._("Provisioning failed at step %(step)s: %(error)s",
                                          step=self.provision_step, error=str(exc)))

    def _provision_done(self, timings):
        self.sudo().write({"state": "active", "provision_step": False, "last_error": False,
                           "provision_timings": self._format_timings(timings),
                           "provision_seconds": sum(seconds for _step, seconds in timings)})
        self.message_post(body=self.env._("Instance ready at %(url)s in %(sec).2f s.",
                                          url=self.url, sec=self.provision_seconds))
        self._commit()  # the instance is live: nothing after this may undo it
        try:
            with self.env.cr.savepoint():
                self._send_welcome()
        except Exception as exc:  # the link can be sent again; the instance stays active
            _logger.error("Instance %s: the welcome mail failed: %s", self.id, exc)
            self.message_post(body=self.env._(
                "The welcome mail could not be prepared (%(error)s). Use \"Send Welcome "
                "Link\" once it is fixed.", error=str(exc)))

    @staticmethod
    def _format_timings(timings):
        return "\n".join("%-10s %6.3f s" % (step, seconds) for step, seconds in timings)

    # -- access: suspend, reactivate, terminate ------------------------------------
    def action_open(self):
        """Open the client database in a new tab."""
        self.ensure_one()
        if self.state != "active":
            raise UserError(self.env._("Only active instances can be opened."))
        return {"type": "ir.actions.act_url", "url": "%s/odoo" % self.url, "target": "new"}

    def action_create_subscription(self):
        """A draft subscription for this instance's plan and customer, opened for review."""
        self.ensure_one()
        self.check_access("write")
        subscription = self.env["saas.subscription"].create({"instance_id": self.id})
        return {"type": "ir.actions.act_window", "res_model": "saas.subscription",
                "res_id": subscription.id, "view_mode": "form", "target": "current"}

    def action_suspend(self):
        self._check_states(("active",), self.env._("Only active instances can be suspended."))
        for instance in self:
            instance._suspend("manual")
        return True

    def action_reactivate(self):
        self._check_states(("suspended",), self.env._("Only suspended instances can be "
                                                      "reactivated."))
        for instance in self:
            instance._reactivate()
        return True

    def action_terminate(self):
        """Ask for an explicit confirmation (the subdomain, typed) before terminating."""
        self.ensure_one()
        self._check_states(("active", "suspended"),
                           self.env._("Only active or suspended instances can be terminated."))
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_instance_terminate")
        action["context"] = {"default_instance_id": self.id}
        return action

    def _suspend(self, reason):
        """Block the database itself: it refuses new connections and its sessions end.

        Nothing inside the client database is relied upon, so no change of
        the client's Odoo can bypass it; Odoo also stops listing (so routing
        to) a database that refuses connections.
        """
        self.ensure_one()
        if self.state != "active":
            raise UserError(self.env._("%(name)s is not active.", name=self.name))
        self._set_connections(False)
        self.sudo().write({"state": "suspended", "suspension_reason": reason,
                           "suspended_on": fields.Datetime.now()})
        self._notify("saas_manager.mail_template_instance_suspended")

    def _reactivate(self):
        self.ensure_one()
        if self.state != "suspended":
            raise UserError(self.env._("%(name)s is not suspended.", name=self.name))
        self._set_connections(True)
        values = {"state": "active", "suspension_reason": False, "suspended_on": False}
        if self.suspension_reason in ("user_limit", "storage_limit"):
            # A fresh grace period to get back under the limit.
            values["limit_exceeded_since"] = fields.Date.context_today(self)
        self.sudo().write(values)
        self._notify("saas_manager.mail_template_instance_reactivated")

    def _set_connections(self, allowed):
        """Allow or refuse connections; refusing also ends every session.

        A session that cannot be ended (another role's) fails the suspension
        and connections are allowed again: the instance stays active as it
        was, rather than half blocked.
        """
        name = self._owned_database_name()
        if not allowed:
            # Our own pooled connections close cleanly instead of being killed.
            Registry.delete(name)
            sql_db.close_db(name)
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

    def _terminate(self):
        """Final verified backup, then remove proxy file, database and filestore.

        The record stays (state terminated) with the backup's location.  A
        failed backup or drop raises and leaves the database as it was.  If
        this transaction is lost after the drop (a crash, a rolled-back cron
        step), the next attempt finds the database gone and resumes with the
        backup already written.
        """
        self.ensure_one()
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("%(name)s cannot be terminated from state %(state)s.",
                                       name=self.name, state=self.state))
        name = self._owned_database_name()
        made, flags = self._final_backup(name)
        try:
            self._provision_remove_database(commit=False)
        except Exception:
            self._restore_flags(name, flags)
            raise
        self._provision_remove_proxy()
        self.sudo().write({
            "state": "terminated", "terminated_on": fields.Datetime.now(),
            "backup_dump_path": made.dump_path, "backup_filestore_path": made.filestore_path,
            "health_status": "unknown"})
        self.subscription_ids.filtered(
            lambda s: s.state not in ("draft", "terminated")).sudo().state = "terminated"
        self._notify("saas_manager.mail_template_instance_terminated")

    def _final_backup(self, name):
        """Dump and filestore archive, both read back; returns ``(backup, flags)``.

        The ownership marker is checked before anything changes.  During the
        backup the database is hidden from Odoo (``IS_TEMPLATE``, which Odoo
        never lists) but accepts pg_dump's connection; on failure its flags
        are restored.  A database already gone (an earlier attempt dropped it)
        resumes with the newest complete backup of it.
        """
        params = self._saas_pg_params()
        with pg.maintenance(params) as conn:
            if not pg.exists(conn, name):
                return self._earlier_backup(name), None
            if pg.comment(conn, name) != self._owner_marker():
                raise UserError(self.env._(
                    "%(db)s does not carry this instance's marker: it is not touched.", db=name))
            flags = pg.connections_allowed(conn, name)
            pg.mark_template(conn, name, True)
            pg.allow_connections(conn, name, True)
        Registry.delete(name)
        sql_db.close_db(name)
        try:
            with pg.maintenance(params) as conn:
                pg.terminate_sessions(conn, name)  # a session it cannot end stops it here
            made = self._saas_backup(name)  # stamped like create_date: see _earlier_backup
        except Exception:
            self._restore_flags(name, flags)
            raise
        return made, flags

    def _earlier_backup(self, name):
        # Only a backup taken since this instance exists: a released subdomain's
        # database name may have belonged to another customer before.
        since = self.create_date.strftime("%Y%m%dT%H%M%SZ")
        made = backup.latest(self._saas_backup_dir(), name, since=since)
        if not made:
            raise UserError(self.env._(
                "%(db)s no longer exists and no backup of it was found in %(dir)s.",
                db=name, dir=self._saas_backup_dir()))
        return made

    def _restore_flags(self, name, connections_allowed):
        """Undo the backup's flags (not hidden, connections as before), if it still exists."""
        if connections_allowed is None:
            return
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.exists(conn, name):
                pg.allow_connections(conn, name, connections_allowed)
                pg.mark_template(conn, name, False)

    # -- usage and limits ------------------------------------------------------------
    def action_refresh_usage(self):
        """Measure users and storage now (the limits cron does it every night)."""
        self.check_access("write")
        for instance in self.sudo().filtered(lambda i: i.state in ("active", "suspended")):
            instance._refresh_usage()
        return True

    def _refresh_usage(self):
        """Users (active internal ones, by read-only SQL) and database + filestore size.

        A suspended database refuses connections: its user count stays the
        last one measured, its sizes are still read.
        """
        self.ensure_one()
        name = self._owned_database_name()
        measured = usage.measure(self._saas_pg_params(), [name], config["data_dir"])[name]
        if measured.error:
            raise UserError(self.env._("Cannot measure %(db)s: %(error)s",
                                       db=name, error=measured.error))
        values = {"database_mb": (measured.database_bytes or 0) / 2**20,
                  "filestore_mb": measured.filestore_bytes / 2**20,
                  "storage_mb": measured.storage_bytes / 2**20,
                  "usage_checked_at": fields.Datetime.now()}
        if measured.users is not None:
            values["user_count"] = measured.users
        self.sudo().write(values)
        return measured

    @api.model
    def _cron_check_limits(self):
        """03:00: measure every live instance and apply the plan's limits."""
        instances = self.sudo().search([("state", "in", ("active", "suspended"))], order="id")
        today = fields.Date.context_today(self)
        policy = self._limit_policy()
        return self._saas_cron_batches(
            instances, lambda instance: instance._check_limits(today, policy), 50)

    @api.model
    def _limit_policy(self):
        get = self.env["ir.config_parameter"].sudo().get_param
        return {"action": get("saas.limit_policy", "notify") or "notify",
                "days": int(get("saas.limit_suspend_days", 7) or 0)}

    def _check_limits(self, today, policy):
        """Flag and notify when over the plan (0 = unlimited); suspend after N days
        when the policy says so."""
        self._refresh_usage()
        plan = self.plan_id
        over_users = bool(plan.max_users) and self.user_count > plan.max_users
        over_storage = bool(plan.storage_gb) and self.storage_mb > plan.storage_gb * 1024
        if over_users and not self.user_limit_exceeded:
            self._notify("saas_manager.mail_template_user_limit")
        if over_storage and not self.storage_limit_exceeded:
            self._notify("saas_manager.mail_template_storage_limit")
        over = over_users or over_storage
        since = (self.limit_exceeded_since or today) if over else False
        self.sudo().write({"user_limit_exceeded": over_users,
                           "storage_limit_exceeded": over_storage,
                           "limit_exceeded_since": since})
        if (over and policy["action"] == "suspend" and self.state == "active"
                and fields.Date.add(since, days=policy["days"]) <= today):
            self._suspend("user_limit" if over_users else "storage_limit")
        elif (not over and self.state == "suspended"
              and self.suspension_reason in ("user_limit", "storage_limit")
              and self.subscription_id.state in (False, "trial", "active", "expiring")):
            self._reactivate()  # back under the limits, or the plan was upgraded

    # -- health ----------------------------------------------------------------------
    @api.model
    def _cron_health(self):
        """Hourly: HTTP and database check of every active instance, concurrently."""
        instances = self.sudo().search([("state", "=", "active")], order="id")
        settings = self._health_settings()
        results = health.check_all(
            [instance._health_target(settings) for instance in instances],
            pg_params=self._saas_pg_params(), connect_timeout=settings["connect_timeout"],
            read_timeout=settings["read_timeout"], concurrency=settings["concurrency"])
        by_id = {result.key: result for result in results}
        now = fields.Datetime.now()
        return self._saas_cron_batches(
            instances,
            lambda instance: instance._record_health(by_id[instance.id], now,
                                                     settings["alert_after"]), 200)

    @api.model
    def _health_settings(self):
        """Where and how hard to probe: odoo.conf (network side) plus one business
        parameter, the number of failures before an alert."""
        get = self.env["ir.config_parameter"].sudo().get_param
        return {
            "public": str(config.get("saas_health_public_url") or "").lower()
            in ("1", "true", "yes"),
            "server_url": self._provision_server_url(),
            "path": config.get("saas_health_path") or "/web/login",
            "connect_timeout": float(config.get("saas_health_connect_timeout") or 3),
            "read_timeout": float(config.get("saas_health_read_timeout") or 5),
            "concurrency": int(config.get("saas_health_concurrency") or 32),
            "alert_after": int(get("saas.health_alert_failures", 3) or 3),
        }

    def _health_target(self, settings):
        """By default the Odoo server itself with the instance's Host header (checks
        that Odoo serves the database); the public URL when configured."""
        if settings["public"]:
            return health.Target(self.id, self.url + settings["path"], None,
                                 self.database_name)
        return health.Target(self.id, settings["server_url"] + settings["path"], self.host,
                             self.database_name)

    def _record_health(self, result, now, alert_after):
        failures = 0 if result.up else self.health_failures + 1
        history = ((self.health_history or "") +
                   (HEALTH_UP if result.up else HEALTH_DOWN))[-HEALTH_HISTORY:]
        self.sudo().write({
            "health_status": "up" if result.up else "down", "health_checked_at": now,
            "health_response_ms": result.response_ms or 0, "health_failures": failures,
            "health_history": history, "health_error": (result.error or "")[:200] or False})
        if failures == alert_after:
            self._health_alert(result)

    def _health_alert(self, result):
        """A to-do for the responsible operator, once per outage."""
        self.activity_schedule(
            "mail.mail_activity_data_todo", user_id=(self.user_id or self.env.user).id,
            summary=self.env._("%(name)s is down", name=self.name),
            note=self.env._("%(count)s failed checks in a row; last error: %(error)s",
                            count=self.health_failures, error=result.error or "-"))
