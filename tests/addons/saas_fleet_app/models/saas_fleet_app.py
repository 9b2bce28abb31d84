from odoo import fields, models


class SaasFleetApp(models.Model):
    """A table that exists once the app is installed."""

    _name = "saas.fleet.app"
    _description = "SaaS Fleet App"

    name = fields.Char(required=True)
