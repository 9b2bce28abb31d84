import re

from odoo import api, fields, models, sql_db
from odoo.exceptions import UserError, ValidationError
from odoo.modules.registry import Registry

from ..engine import pg

MODULE_NAME_RE = re.compile(r"^[a-z0-9_]+$")
TEMPLATE_DB_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class SaasTemplate(models.Model):
    """A master database that client databases are cloned from.

    The template database itself is built, locked and refreshed by operations
    of their own; this model holds what the operator configures and what those
    operations report (state, size).
    """

    _name = "saas.template"
    _description = "SaaS Template"
    _inherit = ["mail.thread", "image.mixin", "saas.secret.mixin", "saas.server.mixin"]
    _order = "sequence, name"

    name = fields.Char(required=True, translate=True, tracking=True)
    code = fields.Char(required=True, help="Short unique technical code, e.g. 'restaurant'.")
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    description = fields.Text(translate=True)
    database_name = fields.Char(
        required=True, tracking=True, copy=False,
        help="PostgreSQL database that holds the template. It is never served to customers.")
    module_names = fields.Char(
        string="Modules", default="base",
        help="Technical names of the Odoo modules the template carries, comma-separated.")
    module_count = fields.Integer(compute="_compute_module_count")
    state = fields.Selection(
        [("draft", "Draft"), ("building", "Building"), ("configuring", "Ready to Configure"),
         ("ready", "Ready (Locked)"), ("error", "Error")],
        default="draft", required=True, readonly=True, tracking=True, copy=False)
    size_mb = fields.Float(string="Size (MB)", readonly=True, copy=False, digits=(16, 1))
    instance_ids = fields.One2many("saas.instance", "template_id", string="Instances")
    instance_count = fields.Integer(compute="_compute_instance_count")
    admin_login = fields.Char(default="admin", required=True, copy=False,
                              help="Administrator login inside the template database.")
    admin_password_encrypted = fields.Char(copy=False, groups="saas_manager.group_saas_admin")
    admin_password = fields.Char(
        compute="_compute_admin_password", inverse="_inverse_admin_password",
        groups="saas_manager.group_saas_admin",
        help="Stored encrypted with the server's saas_manager_key, never in clear.")

    _sql_constraints = [
        ("code_uniq", "unique(code)", "The template code must be unique."),
        ("database_name_uniq", "unique(database_name)",
         "Another template already uses this database."),
    ]

    @api.depends("module_names")
    def _compute_module_count(self):
        for template in self:
            template.module_count = len(template.module_list())

    def _compute_instance_count(self):
        counts = dict(self.env["saas.instance"].with_context(active_test=False)._read_group(
            [("template_id", "in", self.ids)], ["template_id"], ["__count"]))
        for template in self:
            template.instance_count = counts.get(template, 0)

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

    @api.constrains("module_names")
    def _check_module_names(self):
        for template in self:
            bad = [name for name in template.module_list() if not MODULE_NAME_RE.match(name)]
            if bad:
                raise ValidationError(self.env._(
                    "Invalid module technical name(s): %(names)s", names=", ".join(bad)))

    @api.constrains("database_name")
    def _check_database_name(self):
        for template in self:
            if not TEMPLATE_DB_RE.match(template.database_name or ""):
                raise ValidationError(self.env._(
                    "%(name)r is not a valid database name: use up to 63 lowercase letters, "
                    "digits, '_', '.' or '-'.", name=template.database_name))
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

    # -- template database --------------------------------------------------
    def _saas_release_database(self):
        """Forget this process's registry and pooled connections to the template."""
        self.ensure_one()
        Registry.delete(self.database_name)
        sql_db.close_db(self.database_name)

    def _saas_lock(self):
        """Make the template cloneable and unservable: no sessions, no connections."""
        self.ensure_one()
        self._saas_release_database()
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.allow_connections(conn, self.database_name, False)
            pg.terminate_sessions(conn, self.database_name)
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
        self.state = "ready"
        return True

    def action_unlock(self):
        """Unlock for editing: Odoo serves the template again; no clone meanwhile."""
        self.check_access("write")
        for template in self:
            if template.state != "ready":
                raise UserError(self.env._("Only a locked template can be unlocked."))
            template._saas_unlock()
        self.state = "configuring"
        return True
