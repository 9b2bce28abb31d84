import contextlib
import re

import psycopg2

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..engine import filestore, naming, pg

# Whole-string patterns (\A...\Z, used with fullmatch): "$" would accept a final newline.
MODULE_NAME_RE = re.compile(r"\A[a-z0-9_]+\Z")
CODE_RE = re.compile(r"\A[a-z0-9_-]{1,64}\Z")
LANG_RE = re.compile(r"\A[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?\Z")
TEMPLATE_DB_RE = re.compile(r"\A[a-z0-9][a-z0-9_.-]{0,62}\Z")


class SaasTemplate(models.Model):
    """A master database that client databases are cloned from.

    The template database itself is built, locked and refreshed by operations
    of their own; this model holds what the operator configures and what those
    operations report (state, size).
    """

    _name = "saas.template"
    _description = "SaaS Template"
    _inherit = ["mail.thread", "image.mixin", "saas.protected.mixin", "saas.secret.mixin",
                "saas.server.mixin", "saas.operation.mixin"]
    _saas_operation_link = "template_id"
    _order = "sequence, name"

    name = fields.Char(required=True, translate=True, tracking=True)
    code = fields.Char(required=True, help="Short unique technical code, e.g. 'restaurant'.")
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    description = fields.Text(translate=True)
    database_name = fields.Char(
        tracking=True, copy=False,
        help="PostgreSQL database that holds the template; never served to customers. Left "
             "empty, it is named like a host so that the browser reaches it while it is "
             "configured: tpl-<code>.<base domain> (host routing) or tpl-<code> (subdomain "
             "routing), when the template is created or, without a base domain yet, built.")
    module_names = fields.Char(
        string="Modules", default="base",
        help="Technical names of the Odoo modules the template carries, comma-separated.")
    module_count = fields.Integer(compute="_compute_module_count")
    module_ids = fields.Many2many(
        "ir.module.module", string="Modules to Install", compute="_compute_module_ids",
        inverse="_inverse_module_ids", groups="saas_manager.group_saas_admin",
        help="Picked from the modules this server has; kept as technical names (Modules), "
             "where names this server does not have are kept too.")
    state = fields.Selection(
        [("draft", "Draft"), ("building", "Building"), ("configuring", "Ready to Configure"),
         ("ready", "Ready (Locked)"), ("error", "Error")],
        default="draft", required=True, readonly=True, tracking=True, copy=False,
        saas_protected=True)
    size_mb = fields.Float(string="Size (MB)", readonly=True, copy=False, digits=(16, 1),
                           saas_protected=True)
    instance_ids = fields.One2many("saas.instance", "template_id", string="Instances")
    instance_count = fields.Integer(compute="_compute_instance_count")
    operation_ids = fields.One2many("saas.operation", "template_id", string="Operations")
    backup_ids = fields.One2many("saas.backup", "template_id", string="Backups",
                                 groups="saas_manager.group_saas_manager")
    backup_count = fields.Integer(compute="_compute_backup_count",
                                  groups="saas_manager.group_saas_manager")
    admin_login = fields.Char(default="admin", required=True, copy=False,
                              help="Administrator login inside the template database.")
    admin_password_encrypted = fields.Char(copy=False, groups="saas_manager.group_saas_admin")
    admin_password = fields.Char(
        compute="_compute_admin_password", inverse="_inverse_admin_password",
        groups="saas_manager.group_saas_admin",
        help="Stored encrypted with the server's saas_manager_key, never in clear.")
    lang = fields.Char(string="Language", default="en_US", required=True,
                       help="Language installed in the template (code, e.g. fr_BE).")
    with_demo = fields.Boolean(string="Demo Data", help="Load the modules' demo data.")
    build_mode = fields.Selection([("install", "Install"), ("update", "Update")],
                                  readonly=True, copy=False, saas_protected=True)
    database_owned = fields.Boolean(
        readonly=True, copy=False,
        help="The database was built by saas_manager: only then may it drop it.",
        saas_protected=True)
    built_at = fields.Datetime(readonly=True, copy=False, saas_protected=True)
    build_seconds = fields.Float(string="Build Time (s)", readonly=True, copy=False,
                                 digits=(16, 1), saas_protected=True)
    odoo_version = fields.Char(readonly=True, copy=False, saas_protected=True)
    installed_modules = fields.Text(readonly=True, copy=False,
                                    help="Modules installed in the template database, as read "
                                         "from it at the last build or refresh.",
                                         saas_protected=True)
    revision = fields.Integer(readonly=True, copy=False, default=0,
                              help="Incremented each time the template is locked again.",
                              saas_protected=True)

    _sql_constraints = [
        ("code_uniq", "unique(code)", "The template code must be unique."),
        ("database_name_uniq", "unique(database_name)",
         "Another template already uses this database."),
    ]

    @api.depends("module_names")
    def _compute_module_ids(self):
        Module = self.env["ir.module.module"].sudo()
        for template in self:
            template.module_ids = Module.search([("name", "in", template.module_list())])

    def _inverse_module_ids(self):
        """The picked modules, plus the listed names this server does not know (a
        template may be built for another server's addons)."""
        for template in self:
            known = set(self.env["ir.module.module"].sudo().search(
                [("name", "in", template.module_list())]).mapped("name"))
            kept = [name for name in template.module_list() if name not in known]
            template.module_names = ",".join(sorted(template.module_ids.mapped("name")) + kept)

    @api.depends("module_names")
    def _compute_module_count(self):
        for template in self:
            template.module_count = len(template.module_list())

    def _compute_instance_count(self):
        counts = dict(self.env["saas.instance"].with_context(active_test=False)._read_group(
            [("template_id", "in", self.ids)], ["template_id"], ["__count"]))
        for template in self:
            template.instance_count = counts.get(template, 0)

    def _compute_backup_count(self):
        counts = dict(self.env["saas.backup"].sudo()._read_group(
            [("template_id", "in", self.ids)], ["template_id"], ["__count"]))
        for template in self:
            template.backup_count = counts.get(template.sudo(), 0)

    @api.depends("admin_password_encrypted")
    def _compute_admin_password(self):
        self._decrypt_into("admin_password_encrypted", "admin_password")

    def _inverse_admin_password(self):
        for template in self:
            template.admin_password_encrypted = self._encrypt(template.admin_password)

    def module_list(self):
        """The template's modules as a list of technical names."""
        self.ensure_one()
        return [name.strip() for name in (self.module_names or "").split(",") if name.strip()]

    @api.model
    def _saas_check_names(self, vals):
        """Refuse a malformed code, language, module list or database name in ``vals``.

        Called by create/write before any query (and by the constraints after):
        a NUL byte or a non-text value must give this message, not psycopg2's
        "A string literal cannot contain NUL" or a traceback.  Whether the
        database is someone else's (an instance, the manager) needs queries and
        is checked by :meth:`_check_database_name` afterwards.
        """
        checks = (
            ("code", CODE_RE, lambda value: self.env._(
                "%(code)s is not a valid template code: use 1 to 64 lowercase letters, "
                "digits, '_' and '-'.", code=naming.shown(value))),
            ("lang", LANG_RE, lambda value: self.env._(
                "%(lang)s is not a language code (e.g. fr_BE).", lang=naming.shown(value))),
            ("database_name", TEMPLATE_DB_RE, lambda value: self.env._(
                "%(name)s is not a valid database name: use up to 63 lowercase letters, "
                "digits, '_', '.' or '-', starting with a letter or digit.",
                name=naming.shown(value))),
        )
        optional = {"database_name"}  # empty: named from the code (_saas_name_database)
        for key, pattern, message in checks:
            if key not in vals or (key in optional and not vals[key]):
                continue
            if not (isinstance(vals[key], str) and pattern.fullmatch(vals[key])):
                raise ValidationError(message(vals[key]))
        if vals.get("database_name") in naming.ALWAYS_RESERVED:
            raise ValidationError(self.env._(
                "%(name)s is a PostgreSQL database, not a template.", name=vals["database_name"]))
        modules = vals.get("module_names")
        if modules and not isinstance(modules, str):
            raise ValidationError(self.env._(
                "The modules must be text: technical names separated by commas."))
        if modules:
            bad = [name for name in modules.split(",")
                   if name.strip() and not MODULE_NAME_RE.fullmatch(name.strip())]
            if bad:
                raise ValidationError(self.env._(
                    "Invalid module technical name(s): %(names)s",
                    names=", ".join(naming.shown(name.strip()) for name in bad)))

    @api.constrains("module_names")
    def _check_module_names(self):
        for template in self:
            template._saas_check_names({"module_names": template.module_names})

    @api.constrains("code", "lang")
    def _check_code_and_lang(self):
        for template in self:
            template._saas_check_names({"code": template.code, "lang": template.lang})

    @api.constrains("database_name")
    def _check_database_name(self):
        for template in self.filtered("database_name"):
            template._saas_check_names({"database_name": template.database_name})
            if template.database_name == self.env.cr.dbname:
                raise ValidationError(self.env._(
                    "A template cannot use the manager's own database."))
            if self.env["saas.instance"].sudo().search_count([
                    ("database_name", "=", template.database_name),
                    ("subdomain_released", "=", False)]):
                raise ValidationError(self.env._(
                    "%(name)s is a client database, not a template.",
                    name=template.database_name))


    def action_view_instances(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_instance")
        action["domain"] = [("template_id", "=", self.id)]
        action["context"] = {"default_template_id": self.id}
        return action

    def action_view_backups(self):
        self.ensure_one()
        return self.env["saas.backup"]._saas_action([("template_id", "=", self.id)])

    # -- template database --------------------------------------------------
    def _saas_release_database(self):
        """Forget this process's registry and pooled connections to the template."""
        self.ensure_one()
        self._saas_release(self.database_name)

    def _saas_lock(self):
        """Make the template cloneable and unservable: no sessions, no connections.

        A session that cannot be ended (another role's) fails the lock, and
        connections are allowed again: the template stays as it was.
        """
        self.ensure_one()
        self._saas_release_database()
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.allow_connections(conn, self.database_name, False)
            try:
                pg.terminate_sessions(conn, self.database_name)
            except pg.PgError:
                pg.allow_connections(conn, self.database_name, True)
                raise
            pg.mark_template(conn, self.database_name, True)

    def _saas_unlock(self):
        """Let Odoo serve the template again (for configuration)."""
        self.ensure_one()
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.mark_template(conn, self.database_name, False)
            pg.allow_connections(conn, self.database_name, True)

    def action_lock(self):
        """Mark as ready: lock the database so clones are safe and Odoo stops serving it."""
        self.check_access("write")
        for template in self:
            if template.state != "configuring":
                raise UserError(self.env._("Only a template ready to configure can be locked."))
            template._saas_lock()
            template._refresh_info()
            template.sudo().write({"state": "ready", "revision": template.revision + 1})
        return True

    def action_unlock(self):
        """Unlock for editing: Odoo serves the template again; no clone meanwhile."""
        self.check_access("write")
        for template in self:
            if template.state != "ready":
                raise UserError(self.env._("Only a locked template can be unlocked."))
            template._saas_unlock()
        self.sudo().state = "configuring"
        return True

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._saas_check_names(vals)
            if not vals.get("database_name") and vals.get("code"):
                with contextlib.suppress(naming.NamingError):  # no base domain yet: at build
                    vals["database_name"] = self._saas_derived_database_name(vals["code"])
        return super().create(vals_list)

    @api.model
    def _saas_derived_database_name(self, code):
        """``tpl-<code>`` as a host of the base domain, as the routing mode serves it
        (``engine.naming.template_database_name``); NamingError when it cannot be, or
        when another template or an instance already has that database (``a_b`` and
        ``a-b`` give the same name; an instance may predate the ``tpl-`` rule)."""
        params = self.env["saas.instance"]._saas_params()
        name = naming.template_database_name(code, params["base_domain"], params["routing"])
        holder = self.sudo().with_context(active_test=False).search(
            [("database_name", "=", name)], limit=1) or self.env["saas.instance"].sudo().search(
            [("database_name", "=", name), ("subdomain_released", "=", False)], limit=1)
        if holder or name == self.env.cr.dbname:
            raise naming.NamingError("%s is already the database of %s." % (
                name, holder.display_name or self.env.cr.dbname))
        return name

    def _saas_name_database(self):
        """Give templates without a database name the derived one (before a build)."""
        for template in self.filtered(lambda t: not t.database_name):
            try:
                template.database_name = self._saas_derived_database_name(template.code)
            except naming.NamingError as exc:
                raise UserError(self.env._(
                    "%(name)s has no database name and none can be derived: %(reason)s Set "
                    "the base domain in the settings, or name the database yourself.",
                    name=template.name, reason=str(exc))) from exc

    def write(self, vals):
        self._saas_check_names(vals)
        if {"database_name", "admin_login"} & set(vals) and self.filtered(
                lambda t: t.state not in ("draft", "error") or t.database_owned):
            raise UserError(self.env._(
                "The database and administrator of a built template cannot be changed."))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_in_use(self):
        """A template in use cannot be deleted (its instances remember it)."""
        used = self.filtered(lambda t: t.with_context(active_test=False).instance_ids)
        if used:
            raise UserError(self.env._(
                "%(names)s still has instances: archive it instead.",
                names=", ".join(used.mapped("name"))))

    def action_delete(self):
        """Ask whether to drop the template's database too (wizard)."""
        self.ensure_one()
        self.check_access("unlink")
        return {
            "type": "ir.actions.act_window", "res_model": "saas.template.delete",
            "view_mode": "form", "target": "new",
            "context": {"default_template_id": self.id},
        }

    def _backup_and_drop(self):
        """Final verified backup (dump and filestore archive), then drop both.

        Returns the backup's ``saas.backup`` record (none when the database is
        already gone); it outlives the template record.  The database is hidden
        from Odoo and its sessions ended for the backup; a failed backup or
        drop raises and leaves it as it was (flags included).
        """
        self.ensure_one()
        if not self.database_owned:
            raise UserError(self.env._(
                "%(db)s was not built by SaaS Manager: it is not dropped.",
                db=self.database_name))
        name = self.database_name
        with pg.maintenance(self._saas_pg_params()) as conn:
            if not pg.exists(conn, name):
                return self.env["saas.backup"]
        with self._saas_backup_window(name):
            made = self._saas_backup(name)
            record = self.env["saas.backup"]._saas_record(self, "final", made)
            self._drop_database()
        return record

    def action_open_database(self):
        """Open the unlocked template in a new tab, logged in as its administrator.

        A one-click login link (``engine.login``) of the template database, as
        *Login as Administrator* is for an instance; the chatter records who.
        """
        self.ensure_one()
        self.check_access("write")
        if self.state != "configuring":
            raise UserError(self.env._("Only an unlocked template can be opened."))
        address = self._access_url()
        token = self._saas_issue_login(self.database_name, self.admin_login)
        self.message_post(body=self.env._(
            "%(user)s opened the template as its administrator %(login)s.",
            user=self.env.user.name, login=self.admin_login))
        return {"type": "ir.actions.act_url", "target": "new",
                "url": "%s/saas/login#%s" % (address, token)}

    def _access_url(self):
        """The address that reaches the template database: ``dbfilter`` maps a host to a
        database, so the database's name must be that host (host routing) or its first
        label (subdomain routing), as the derived names are."""
        params = self.env["saas.instance"]._saas_params()
        name = self.database_name or ""
        if params["routing"] == "host" and "." in name and naming.is_domain(name):
            return self._saas_public_url(name)
        if (params["routing"] == "subdomain" and not naming.label_problem(name)
                and naming.is_domain(params["base_domain"])):
            return self._saas_public_url(naming.host_for(name, params["base_domain"]))
        raise UserError(self.env._(
            "With the current routing mode, no host reaches the database %(db)s. Name "
            "template databases like hosts (e.g. tpl-%(code)s.example.com with dbfilter ^%%h$, "
            "or tpl-%(code)s with ^%%d$): see CONFIGURATION.md, Templates.",
            db=name, code=self.code))

    def _template_cursor(self):
        return _TemplateCursor(self.database_name, self._saas_pg_params())

    def _read_installed_modules(self):
        with self._template_cursor() as cr:
            cr.execute("SELECT name FROM ir_module_module WHERE state = 'installed' "
                       "ORDER BY name")
            return [row[0] for row in cr.fetchall()]

    def _refresh_info(self):
        """Size, installed modules and Odoo version, as the database says."""
        with pg.maintenance(self._saas_pg_params()) as conn:
            locked = not pg.connections_allowed(conn, self.database_name)
            size = pg.size(conn, self.database_name) or 0
        size += filestore.tree_size(self._saas_filestore(self.database_name))
        values = {"size_mb": size / 1024 / 1024}
        if not locked:
            with self._template_cursor() as cr:
                cr.execute("SELECT latest_version FROM ir_module_module WHERE name = 'base'")
                row = cr.fetchone()
                values["odoo_version"] = row and row[0]
            values["installed_modules"] = ", ".join(self._read_installed_modules())
        self.sudo().write(values)

    def _drop_database(self):
        """Drop the template database and filestore (only ever one built here)."""
        self._saas_release_database()
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.drop(conn, self.database_name)
        filestore.remove_tree(self._saas_filestore(self.database_name))
        self.sudo().database_owned = False
        self._saas_deployment(self.server_id).sudo().state = "missing"


class _TemplateCursor:
    """A short autocommit cursor on the template database (no Odoo registry)."""

    def __init__(self, database, params):
        self.database, self.params, self.conn = database, params, None

    def __enter__(self):
        self.conn = psycopg2.connect(dbname=self.database, **self.params)
        self.conn.autocommit = True
        return self.conn.cursor()

    def __exit__(self, *exc):
        self.conn.close()
