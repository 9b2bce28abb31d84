from odoo import fields, models


class SaasFleetProbe(models.Model):
    """Rows the tests count: the marker loaded at install, and one row per release whose
    migration ran."""

    _name = "saas.fleet.probe"
    _description = "SaaS Fleet Probe"

    name = fields.Char(required=True)
    release = fields.Char()
