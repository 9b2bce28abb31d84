"""saas.backup: one record per verified backup of an instance or a template database.

A record is written only once both files were read back (see
``engine/backup.py``); it keeps where they are, their sizes and SHA-256, and
the stamp in their names.  Records are never written by users (every field
is protected and read-only) and only SaaS Managers read them: the paths are
the server's.

Who a backup belongs to: an **instance** (``ondelete="restrict"``: an
instance with backups cannot be deleted, the record is how its data is
found again), or a **template**, whose record may be deleted afterwards:
deleting a template with "drop the database too" is precisely when its final
backup is made, so the backup outlives it (``ondelete="set null"``; the
database name, the kind and ``source`` still say what it was).

``expires_on`` is set from the retention setting of the backup's kind
(``saas.backup_<kind>_retention_days``, 0 = kept for good); nothing deletes
backups yet.
"""

from datetime import datetime, timedelta

from odoo import api, fields, models

from ..engine import backup as engine_backup

BACKUP_KINDS = [
    ("final", "Final"),
    ("manual", "Manual"),
    ("scheduled", "Scheduled"),
    ("before_operation", "Before an Operation"),
]
#: The file names' stamp format (UTC, the database server's clock).
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class SaasBackup(models.Model):
    _name = "saas.backup"
    _description = "SaaS Backup"
    _inherit = ["saas.protected.mixin"]
    _order = "stamp desc, id desc"

    source = fields.Selection([("instance", "Instance"), ("template", "Template")],
                              required=True, readonly=True, saas_protected=True)
    instance_id = fields.Many2one("saas.instance", readonly=True, index="btree_not_null",
                                  ondelete="restrict", saas_protected=True)
    template_id = fields.Many2one(
        "saas.template", readonly=True, index="btree_not_null", ondelete="set null",
        saas_protected=True,
        help="Empty once the template record is deleted: the backup stays.")
    company_id = fields.Many2one(related="instance_id.company_id", string="Company")
    kind = fields.Selection(BACKUP_KINDS, required=True, readonly=True, index=True,
                            saas_protected=True)
    operation_id = fields.Many2one("saas.operation", readonly=True, ondelete="set null",
                                   saas_protected=True,
                                   help="The operation that took this backup.")
    database_name = fields.Char(required=True, readonly=True, saas_protected=True)
    stamp = fields.Datetime(
        required=True, readonly=True, saas_protected=True,
        help="When the backup was started, by the database server's clock; its file names "
             "carry it (UTC).")
    verified_at = fields.Datetime(readonly=True, saas_protected=True,
                                  help="When both files had been read back.")
    dump_path = fields.Char(string="Database Dump", required=True, readonly=True,
                            saas_protected=True)
    # Sizes in bytes as numeric (Float with digits): an Integer column (int4) ends at 2 GiB.
    dump_size = fields.Float(string="Dump Size (bytes)", digits=(20, 0), readonly=True,
                             saas_protected=True)
    dump_sha256 = fields.Char(string="Dump SHA-256", readonly=True, saas_protected=True)
    filestore_path = fields.Char(string="Filestore Archive", required=True, readonly=True,
                                 saas_protected=True)
    filestore_size = fields.Float(string="Archive Size (bytes)", digits=(20, 0),
                                  readonly=True, saas_protected=True)
    filestore_sha256 = fields.Char(string="Archive SHA-256", readonly=True,
                                   saas_protected=True)
    file_count = fields.Integer(string="Files Archived", readonly=True, saas_protected=True)
    size_mb = fields.Float(string="Size (MB)", compute="_compute_size_mb", digits=(16, 1))
    expires_on = fields.Date(
        readonly=True, saas_protected=True,
        help="End of the retention of this kind of backup (empty: kept for good). Nothing "
             "deletes backups by itself yet.")

    _sql_constraints = [
        ("one_owner",
         "CHECK ((source = 'instance' AND instance_id IS NOT NULL AND template_id IS NULL) "
         "OR (source = 'template' AND instance_id IS NULL))",
         "A backup belongs to exactly one instance or template."),
        ("files_unique", "unique(dump_path)", "Another backup has this dump file."),
    ]

    @api.depends("database_name", "stamp")
    def _compute_display_name(self):
        for record in self:
            record.display_name = "%s %s" % (
                record.database_name or "", fields.Datetime.to_string(record.stamp) or "")

    @api.depends("dump_size", "filestore_size")
    def _compute_size_mb(self):
        for record in self:
            record.size_mb = (record.dump_size + record.filestore_size) / 1024 / 1024

    # -- creation (saas_manager's own code, as superuser) -------------------------------
    @api.model
    def _saas_record(self, target, kind, made, operation=None):
        """The record of ``made`` (an ``engine.backup.Backup``) taken of ``target``'s
        database: an instance or a template."""
        target.ensure_one()
        stamp = datetime.strptime(made.stamp, STAMP_FORMAT)
        days = self.env["saas.settings"]._get("saas.backup_%s_retention_days" % kind)
        link = {"saas.instance": "instance_id", "saas.template": "template_id"}[target._name]
        return self.sudo().create({
            "source": target._name.split(".")[1], link: target.id, "kind": kind,
            "operation_id": operation.id if operation else False,
            "database_name": target.database_name, "stamp": stamp,
            "verified_at": fields.Datetime.now(),
            "dump_path": made.dump_path, "dump_size": made.dump_bytes,
            "dump_sha256": made.dump_sha256, "filestore_path": made.filestore_path,
            "filestore_size": made.filestore_bytes, "filestore_sha256": made.filestore_sha256,
            "file_count": made.files,
            "expires_on": (stamp + timedelta(days=days)).date() if days > 0 else False,
        })

    def _saas_engine_backup(self):
        """This record as the engine's ``Backup`` (for verify and restore)."""
        self.ensure_one()
        return engine_backup.Backup(
            self.dump_path, self.filestore_path, self.file_count, int(self.dump_size),
            int(self.filestore_size), dump_sha256=self.dump_sha256 or "",
            filestore_sha256=self.filestore_sha256 or "",
            stamp=self.stamp.strftime(STAMP_FORMAT))

    def _saas_verify(self):
        """Raise ``engine.backup.BackupError`` unless both files are still there, with the
        sizes and checksums recorded."""
        self.ensure_one()
        engine_backup.verify(self._saas_engine_backup())

    @api.model
    def _saas_action(self, domain, context=None):
        """The Backups list restricted to ``domain`` (smart buttons)."""
        action = self.env["ir.actions.act_window"]._for_xml_id("saas_manager.action_saas_backup")
        action["domain"] = domain
        action["context"] = context or {}
        return action
