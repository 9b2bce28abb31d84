"""``saas.template.deployment``: a template's database on one server.

``CREATE DATABASE ... TEMPLATE`` copies a database of the same PostgreSQL
cluster only, so a template is cloned on a server from its deployment there.
The deployment on the template's home server is the template database
itself, made ready each time the template is locked.
"""

from odoo import api, fields, models
from odoo.exceptions import UserError

DEPLOYMENT_STATES = [
    ("ready", "Ready"),          # cloneable: the revision it holds
    ("outdated", "Outdated"),    # being changed, or older than the template: not cloned
    ("missing", "Missing"),      # its database was dropped
]


class SaasTemplateDeployment(models.Model):
    _name = "saas.template.deployment"
    _description = "SaaS Template Deployment"
    _order = "template_id, server_id"
    _rec_name = "database_name"

    template_id = fields.Many2one("saas.template", required=True, index=True,
                                  ondelete="cascade", readonly=True)
    server_id = fields.Many2one("saas.server", required=True, index=True, ondelete="restrict",
                                readonly=True)
    database_name = fields.Char(required=True, readonly=True,
                                help="The database clones are made from on that server.")
    revision = fields.Integer(readonly=True, help="The template revision this database holds.")
    state = fields.Selection(DEPLOYMENT_STATES, required=True, default="missing",
                             readonly=True)
    deployed_at = fields.Datetime(readonly=True)

    _sql_constraints = [
        ("template_server_uniq", "unique(template_id, server_id)",
         "A template has one deployment per server."),
    ]


class SaasTemplate(models.Model):
    _inherit = "saas.template"

    server_id = fields.Many2one(
        "saas.server", string="Home Server", required=True, ondelete="restrict",
        default=lambda self: self.env["saas.server"]._local(), tracking=True,
        help="Where the template database is built and configured; locking it makes "
             "its deployment there ready.")
    deployment_ids = fields.One2many("saas.template.deployment", "template_id",
                                     string="Deployments", readonly=True)

    @api.model_create_multi
    def create(self, vals_list):
        templates = super().create(vals_list)
        templates.filtered(lambda t: t.state == "ready")._saas_sync_home_deployment()
        return templates

    def write(self, vals):
        if "server_id" in vals and self.filtered(
                lambda t: t.server_id.id != vals["server_id"]
                and (t.state not in ("draft", "error") or t.database_owned)):
            raise UserError(self.env._(
                "The home server of a built template cannot be changed."))
        result = super().write(vals)
        if "state" in vals:
            self._saas_sync_home_deployment()
        return result

    def _saas_sync_home_deployment(self):
        """The home server's deployment follows the template database: ready (this
        revision) while the template is locked, outdated while it is changed."""
        Deployment = self.env["saas.template.deployment"].sudo()
        for template in self:
            deployment = template._saas_deployment(template.server_id)
            if template.state == "ready":
                values = {"database_name": template.database_name, "state": "ready",
                          "revision": template.revision, "deployed_at": fields.Datetime.now()}
                if deployment:
                    deployment.write(values)
                else:
                    Deployment.create({"template_id": template.id,
                                       "server_id": template.server_id.id, **values})
            elif deployment.state == "ready":
                deployment.state = "outdated"

    def _saas_deployment(self, server):
        """This template's deployment on ``server`` (maybe empty)."""
        self.ensure_one()
        return self.sudo().deployment_ids.filtered(lambda d: d.server_id == server)

    def _saas_clone_source(self, server):
        """The ready deployment to clone from on ``server``, or a clear refusal."""
        deployment = self._saas_deployment(server)
        if deployment.state != "ready":
            raise UserError(self.env._(
                "The template %(tpl)s has no ready deployment on the server %(server)s "
                "(%(state)s): lock it there first.", tpl=self.name, server=server.name,
                state=dict(DEPLOYMENT_STATES).get(deployment.state, self.env._("none"))))
        return deployment
