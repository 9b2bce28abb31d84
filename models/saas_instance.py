import logging
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
    plan_id = fields.Many2one("saas.plan", required=True, tracking=True, ondelete="restrict")
    subscription_id = fields.Many2one(
        "saas.subscription", string="Current Subscription", copy=False,
        domain="[('instance_id', '=', id)]")
    subscription_ids = fields.One2many("saas.subscription", "instance_id",
                                       string="Subscriptions")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    state = fields.Selection(INSTANCE_STATES, default="draft", required=True, readonly=True,
                             tracking=True, copy=False, index=True)
    provision_step = fields.Char(readonly=True, copy=False,
                                 help="Step being run, or the step that failed.")
    provision_timings = fields.Text(readonly=True, copy=False,
                                    help="Seconds spent in each provisioning step.")
    provision_seconds = fields.Float(string="Provisioning Time (s)", readonly=True, copy=False,
                                     digits=(16, 2))
    last_error = fields.Text(readonly=True, copy=False)
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
    database_owned = fields.Boolean(
        readonly=True, copy=False,
        help="Set before the client database is created: only a database recorded as created "
             "for this instance is ever dropped by saas_manager.")
    admin_login = fields.Char(string="Customer Admin Login", readonly=True, copy=False)
    admin_password_encrypted = fields.Char(copy=False, groups="saas_manager.group_saas_manager")
    admin_password = fields.Char(
        string="Customer Admin Password", compute="_compute_admin_password",
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

    def _compute_admin_password(self):
        for instance in self:
            instance.admin_password = self._decrypt(instance.admin_password_encrypted)

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
        for instance in self.filtered("custom_domain"):
            try:
                naming.check_base_domain(instance.custom_domain)
            except naming.NamingError as exc:
                raise ValidationError(str(exc)) from exc
            if self.search_count([("id", "!=", instance.id),
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
        """Unique subdomain and database among unreleased instances, race-proof."""
        for column in ("subdomain", "database_name"):
            self.env.cr.execute(SQL(
                "CREATE UNIQUE INDEX IF NOT EXISTS %s ON saas_instance (%s) "
                "WHERE subdomain_released IS NOT TRUE",
                SQL.identifier("saas_instance_%s_live_uniq" % column), SQL.identifier(column)))

    # -- ORM -------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("subdomain"):
                self._check_subdomain_free(vals["subdomain"])
        return super().create(vals_list)

    def write(self, vals):
        if "subdomain" in vals:
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
        self.subdomain_released = True
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
        self.write({"state": "provisioning", "provision_step": "queued", "last_error": False})
        self.env.ref("saas_manager.ir_cron_saas_provision")._trigger()
        return True

    @api.model
    def _cron_provision(self, batch=5):
        """Provision queued instances, a few per run, one transaction each."""
        queued = self.search([("state", "=", "provisioning")], order="id", limit=batch)
        for instance in queued:
            if instance._provision_lock():
                try:
                    instance._provision()
                finally:
                    instance._provision_unlock()
            self._commit()
        remaining = self.search_count([("state", "=", "provisioning")])
        self.env["ir.cron"]._notify_progress(done=len(queued), remaining=remaining)
        return True

    def _commit(self):
        """Commit outside tests (a test's transaction is rolled back at its end)."""
        if not getattr(threading.current_thread(), "testing", False):
            # A cron that provisions databases commits per instance: an instance's
            # outcome (and its recorded ownership) must survive the next one's crash.
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _provision_lock(self):
        """Session-level advisory lock: survives the commits made while provisioning."""
        self.env.cr.execute("SELECT pg_try_advisory_lock(%s, %s)", [PROVISION_LOCK_KEY, self.id])
        return self.env.cr.fetchone()[0]

    def _provision_unlock(self):
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
                    self.provision_step = step
                    start = time.perf_counter()
                    getattr(self, "_provision_%s" % step)(run)
                    timings.append((step, time.perf_counter() - start))
            except Exception as exc:
                self._provision_failed(exc, run.undo, timings)
                return False
        self._provision_done(timings)
        return True

    def _provision_recover(self):
        """A previous attempt crashed after creating things: remove them, start clean."""
        if self.database_owned:
            _logger.info("Instance %s: removing what a previous attempt created", self.id)
            self._provision_remove_database()
            self._provision_remove_proxy()

    def _provision_clone(self, run):
        """CREATE DATABASE ... TEMPLATE, after recording that this instance owns the name."""
        names = self._provision_names()
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.exists(conn, names["database"]):
                raise UserError(self.env._(
                    "A database named %(db)s already exists and was not created for this "
                    "instance: it is left untouched.", db=names["database"]))
            self._provision_mark_owned(True)
            run.undo.append(self._provision_remove_database)
            template = self.template_id.database_name
            if pg.connections_allowed(conn, template):
                pg.terminate_sessions(conn, template)
            pg.clone(conn, template, names["database"], owner_role=self._saas_db_owner(),
                     strategy=self._saas_param("saas.clone_strategy", pg.DEFAULT_STRATEGY))

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

    def _provision_customize(self, run):
        """Company and customer administrator, over JSON-RPC through the serving Odoo."""
        login = self._admin_login()
        self.write({"admin_login": login,
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
        """Write (and reload) the nginx files, when a configuration folder is set."""
        folder = self._saas_param("saas.proxy_conf_dir")
        if not folder:
            return
        settings = self._proxy_settings()
        texts = {proxy.WILDCARD_FILE: proxy.render_wildcard(
            self._saas_params()["base_domain"], settings["upstream"],
            settings["websocket_upstream"], settings["certificate"], settings["key"])}
        if self.custom_domain:
            texts[proxy.INSTANCE_FILE % self.subdomain] = proxy.render_custom_domain(
                self.custom_domain, self.host,
                settings["certificate_pattern"].format(domain=self.custom_domain),
                settings["key_pattern"].format(domain=self.custom_domain))
        for name, text in texts.items():
            path = "%s/%s" % (folder.rstrip("/"), name)
            previous = proxy.apply(path, text, settings["validate"], settings["reload"])
            run.undo.append(lambda path=path, previous=previous: proxy.restore(path, previous))

    def _proxy_settings(self):
        port = config.get("http_port") or 8069
        return {
            "upstream": self._saas_param("saas.proxy_upstream", "127.0.0.1:%s" % port),
            "websocket_upstream": self._saas_param(
                "saas.proxy_websocket_upstream", "127.0.0.1:%s" % (config.get("gevent_port")
                                                                   or 8072)),
            "certificate": self._saas_param("saas.proxy_certificate"),
            "key": self._saas_param("saas.proxy_certificate_key"),
            "certificate_pattern": self._saas_param(
                "saas.proxy_domain_certificate", "/etc/letsencrypt/live/{domain}/fullchain.pem"),
            "key_pattern": self._saas_param(
                "saas.proxy_domain_certificate_key",
                "/etc/letsencrypt/live/{domain}/privkey.pem"),
            "validate": self._saas_param("saas.proxy_validate_command", "nginx -t"),
            "reload": self._saas_param("saas.proxy_reload_command", "nginx -s reload"),
        }

    def _provision_server_url(self):
        """The Odoo server that serves client databases (this one by default)."""
        return self._saas_param("saas.odoo_url",
                                "http://127.0.0.1:%s" % (config.get("http_port") or 8069))

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

    def _provision_mark_owned(self, owned):
        """Record ownership durably (committed) before the database exists."""
        self.database_owned = owned
        self._commit()

    def _provision_remove_database(self):
        """Drop the database and filestore recorded as created for this instance."""
        if not self.database_owned:
            return
        Registry.delete(self.database_name)
        sql_db.close_db(self.database_name)
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.drop(conn, self.database_name)
        filestore.remove_tree(self._saas_filestore(self.database_name))
        self._provision_mark_owned(False)

    def _provision_remove_proxy(self):
        folder = self._saas_param("saas.proxy_conf_dir")
        if folder and self.custom_domain:
            proxy.restore("%s/%s" % (folder.rstrip("/"), proxy.INSTANCE_FILE % self.subdomain),
                          None)

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
        self.write({"state": "failed", "last_error": message,
                    "provision_timings": self._format_timings(timings),
                    "admin_password_encrypted": False})
        self.message_post(body=self.env._("Provisioning failed at step %(step)s: %(error)s",
                                          step=self.provision_step, error=str(exc)))

    def _provision_done(self, timings):
        self.write({"state": "active", "provision_step": False, "last_error": False,
                    "provision_timings": self._format_timings(timings),
                    "provision_seconds": sum(seconds for _step, seconds in timings)})
        self.message_post(body=self.env._("Instance ready at %(url)s in %(sec).2f s.",
                                          url=self.url, sec=self.provision_seconds))

    @staticmethod
    def _format_timings(timings):
        return "\n".join("%-10s %6.3f s" % (step, seconds) for step, seconds in timings)
