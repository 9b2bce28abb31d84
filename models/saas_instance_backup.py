"""Backups of an instance's database: saas.backup records, and taking one now."""

from odoo import fields, models
from odoo.exceptions import UserError

from ..engine import pg


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    backup_ids = fields.One2many("saas.backup", "instance_id", string="Backups",
                                 groups="saas_manager.group_saas_manager")
    backup_count = fields.Integer(compute="_compute_backup_info",
                                  groups="saas_manager.group_saas_manager")
    final_backup_id = fields.Many2one(
        "saas.backup", compute="_compute_backup_info",
        groups="saas_manager.group_saas_manager",
        help="The backup taken just before the database was dropped.")

    def _compute_backup_info(self):
        Backup = self.env["saas.backup"].sudo()
        counts = dict(Backup._read_group([("instance_id", "in", self.ids)], ["instance_id"],
                                         ["__count"]))
        for instance in self:
            instance.backup_count = counts.get(instance.sudo(), 0)
            instance.final_backup_id = instance._saas_final_backup().id

    def _saas_final_backup(self):
        """The newest final backup of this instance (a termination's), if any."""
        self.ensure_one()
        return self.env["saas.backup"].sudo().search(
            [("instance_id", "=", self.id), ("kind", "=", "final")],
            order="stamp desc, id desc", limit=1)

    def action_view_backups(self):
        self.ensure_one()
        return self.env["saas.backup"]._saas_action([("instance_id", "=", self.id)])

    def _saas_backup_now(self, kind, operation=None):
        """A verified backup of the database as it is now: the ``saas.backup`` record.

        For operation handlers (a backup asked for, one taken before an
        update).  An active database is dumped while it serves its users
        (``pg_dump`` reads one consistent snapshot); a suspended one, which
        refuses connections, is opened to ``pg_dump`` only, hidden from Odoo,
        and closed again.  The ownership marker is checked first.
        """
        self.ensure_one()
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("%(name)s has no database to back up (state %(state)s).",
                                       name=self.name, state=self.state))
        name = self._owned_database_name()
        self._check_database_marker(name)
        if self.state == "active":
            return self._saas_backup_record(name, kind, operation)
        with self._saas_backup_window(name, restore=(False, False)):
            return self._saas_backup_record(name, kind, operation)

    def _saas_backup_record(self, name, kind, operation=None):
        """Back up ``name`` (which must accept connections) and record it."""
        made = self._saas_backup(name)
        return self.env["saas.backup"]._saas_record(self, kind, made, operation)

    def _check_database_marker(self, name):
        """Refuse a database that does not carry this instance's ownership marker."""
        with pg.maintenance(self._saas_pg_params()) as conn:
            if pg.comment(conn, name) != self._owner_marker():
                raise UserError(self.env._(
                    "%(db)s does not carry this instance's marker: it is not touched.", db=name))
