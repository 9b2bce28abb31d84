from odoo import api, models
from odoo.exceptions import AccessError


class SaasProtectedMixin(models.AbstractModel):
    """Fields that only saas_manager's own code (as superuser) may write.

    A field is protected where it is declared, ``fields.Char(saas_protected=True)``
    (a field parameter accepted through ``_valid_field_parameter``, as ``mail``
    does for ``tracking``), so an ``_inherit`` file adds its own protected
    fields without a central list.  Such fields decide which database is
    created, dropped or served, or what a customer is billed: users and RPC
    calls never write them, even with write access to the record.
    """

    _name = "saas.protected.mixin"
    _description = "SaaS Protected Fields"

    def _valid_field_parameter(self, field, name):
        return name == "saas_protected" or super()._valid_field_parameter(field, name)

    @api.model
    def _saas_protected_fields(self):
        return {name for name, field in self._fields.items()
                if getattr(field, "saas_protected", False)}

    def _saas_check_protected(self, vals, creating=False):
        """Refuse protected fields from users and RPC; on create, also ``default_<field>``
        context keys, which create() would apply after this check."""
        if self.env.su:
            return
        keys = set(vals)
        if creating:
            keys |= {key[len("default_"):] for key in self.env.context
                     if key.startswith("default_")}
        forbidden = self._saas_protected_fields() & keys
        if forbidden:
            raise AccessError(self.env._(
                "These fields are managed by SaaS Manager itself: %(fields)s",
                fields=", ".join(sorted(forbidden))))

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._saas_check_protected(vals, creating=True)
        return super().create(vals_list)

    def write(self, vals):
        self._saas_check_protected(vals)
        return super().write(vals)
