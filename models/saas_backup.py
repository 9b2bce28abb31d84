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

What a backup holds is recorded with it, read in the dump's own snapshot
(``engine/backup.py``): the row count of every table, the installed modules
and the PostgreSQL version.  The restore drill compares a restore with them;
Odoo's backup zip takes its manifest from them.

Concerns are split like the instance's: retention and pruning in
``saas_backup_retention.py``, restore drills in ``saas_backup_drill.py``,
off-site copies in ``saas_backup_offsite.py``.

Stored format (a decision, measured in ``bench/bench_backup.py``): the
server's own, ``pg_dump -Fc`` plus a ``.tar.gz`` of the filestore, because
it is compressed, checksummed file by file, restored by ``pg_restore``
without a plain-SQL pass, and what the drill and restores read.  Odoo's own
backup zip (``dump.sql``, ``filestore/``, ``manifest.json``), which any Odoo
18 database manager restores, is produced from it on download.
"""

import os
import secrets
from datetime import datetime, timedelta

from odoo import api, fields, models, release

from ..engine import backup as engine_backup
from ..engine import odoo_zip
from .saas_server_mixin import STAMP_FORMAT

BACKUP_KINDS = [
    ("final", "Final"),
    ("manual", "Manual"),
    ("scheduled", "Scheduled"),
    ("before_operation", "Before an Operation"),
]


class SaasBackup(models.Model):
    _name = "saas.backup"
    _description = "SaaS Backup"
    _inherit = ["saas.protected.mixin", "saas.server.mixin", "saas.lifecycle.mixin"]
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
    server_id = fields.Many2one("saas.server", readonly=True, index=True, ondelete="restrict",
                                saas_protected=True,
                                help="The server whose backup folder holds the files.")
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
        help="End of the retention of this kind of backup (empty: kept by the plan's "
             "daily/weekly/monthly retention, or for good).")
    row_counts = fields.Json(
        readonly=True, saas_protected=True,
        help="Rows of every table when the backup was taken (in the dump's snapshot).")
    table_count = fields.Integer(compute="_compute_contents", string="Tables")
    row_total = fields.Integer(compute="_compute_contents", string="Rows")
    modules = fields.Json(readonly=True, saas_protected=True,
                          help="Installed modules and their versions when the backup was taken.")
    pg_version = fields.Char(string="PostgreSQL Version", readonly=True, saas_protected=True)
    local_state = fields.Selection(
        [("present", "On the Server"), ("removed", "Off-site Only")], string="Local Copy",
        default="present",
        required=True, readonly=True, saas_protected=True,
        help="Local files are removed once copied off-site and older than the local "
             "retention (Settings); a restore fetches them back.")

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

    @api.depends("row_counts")
    def _compute_contents(self):
        for record in self:
            counts = record.row_counts or {}
            record.table_count = len(counts)
            record.row_total = sum(counts.values())

    @api.depends("dump_size", "filestore_size")
    def _compute_size_mb(self):
        for record in self:
            record.size_mb = (record.dump_size + record.filestore_size) / 1024 / 1024

    @api.model
    def _saas_newest_good(self, instances):
        """``{instance: stamp}`` of each instance's newest backup that can be trusted:
        verified, and its restore drill did not fail.  The one rule of the dashboard's
        Backups Overdue tile and of the metrics endpoint's backup age."""
        return dict(self.sudo()._read_group(
            [("instance_id", "in", instances.ids), ("verified_at", "!=", False),
             ("drill_state", "!=", "failed")], ["instance_id"], ["stamp:max"]))

    # -- creation (saas_manager's own code, as superuser) -------------------------------
    @api.model
    def _saas_record(self, target, kind, made, operation=None):
        """The record of ``made`` (an ``engine.backup.Backup``) taken of ``target``'s
        database: an instance or a template.  It is copied off-site at once when an
        object store is configured (a final backup, say, before its database is
        dropped)."""
        target.ensure_one()
        stamp = datetime.strptime(made.stamp, STAMP_FORMAT)
        link = {"saas.instance": "instance_id", "saas.template": "template_id"}[target._name]
        record = self.sudo().create({
            "source": target._name.split(".")[1], link: target.id, "kind": kind,
            "server_id": target.server_id.id,
            "operation_id": operation.id if operation else False,
            "database_name": target.database_name, "stamp": stamp,
            "verified_at": fields.Datetime.now(), "local_since": fields.Datetime.now(),
            "dump_path": made.dump_path, "dump_size": made.dump_bytes,
            "dump_sha256": made.dump_sha256, "filestore_path": made.filestore_path,
            "filestore_size": made.filestore_bytes, "filestore_sha256": made.filestore_sha256,
            "file_count": made.files, "row_counts": made.row_counts,
            "modules": made.modules, "pg_version": made.pg_version or False,
            "expires_on": self._saas_expiry(kind, stamp),
        })
        record._saas_copy_offsite()  # never raises: a failed copy is retried hourly
        return record

    @api.model
    def _saas_expiry(self, kind, stamp):
        """End of retention of a backup of ``kind`` taken at ``stamp``: the kind's days
        setting; none for scheduled backups (their plan's daily/weekly/monthly retention
        decides, see saas_backup_retention.py)."""
        if kind == "scheduled":
            return False
        days = self.env["saas.settings"]._get("saas.backup_%s_retention_days" % kind)
        return (stamp + timedelta(days=days)).date() if days > 0 else False

    def _saas_engine_backup(self):
        """This record as the engine's ``Backup`` (for verify and restore)."""
        self.ensure_one()
        return engine_backup.Backup(
            self.dump_path, self.filestore_path, self.file_count, int(self.dump_size),
            int(self.filestore_size), dump_sha256=self.dump_sha256 or "",
            filestore_sha256=self.filestore_sha256 or "",
            stamp=self.stamp.strftime(STAMP_FORMAT), row_counts=dict(self.row_counts or {}),
            modules=dict(self.modules or {}), pg_version=self.pg_version or "")

    def _saas_verify(self):
        """Raise ``engine.backup.BackupError`` unless both files are still there, with the
        sizes and checksums recorded."""
        self.ensure_one()
        engine_backup.verify(self._saas_engine_backup())

    def _saas_owner(self):
        """The instance or template this backup was taken of (the template may be gone)."""
        self.ensure_one()
        return self.instance_id or self.template_id

    @api.model
    def _saas_action(self, domain, context=None):
        """The Backups list restricted to ``domain`` (smart buttons)."""
        action = self.env["ir.actions.act_window"]._for_xml_id("saas_manager.action_saas_backup")
        action["domain"] = domain
        action["context"] = context or {}
        return action

    # -- buttons --------------------------------------------------------------------------
    def action_download(self):
        """The download route (controllers/backup.py) in the format the button names."""
        self.ensure_one()
        self.check_access("read")
        fmt = self.env.context.get("download_format", "odoo")
        return {"type": "ir.actions.act_url", "target": "download",
                "url": "/saas/backup/%d/download/%s" % (self.id, fmt)}

    def action_open_restore(self):
        self.ensure_one()
        self.instance_id.check_access("write")
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "saas_manager.action_saas_backup_restore")
        action["context"] = {"default_backup_id": self.id}
        return action

    # -- download -------------------------------------------------------------------------
    def _saas_download(self, fmt):
        """``(open binary file, file name, size)`` of this backup in ``fmt`` (``odoo``,
        ``dump`` or ``filestore``); see controllers/backup.py.  The Odoo zip is written
        to an unlinked temporary file: it is gone as soon as the download ends."""
        self.ensure_one()
        made = self.sudo()._saas_local_copy()
        if fmt == "dump":
            path, name = made.dump_path, os.path.basename(made.dump_path)
        elif fmt == "filestore":
            path, name = made.filestore_path, os.path.basename(made.filestore_path)
        else:
            path = os.path.join(os.path.dirname(made.dump_path),
                                ".download-%s.zip" % secrets.token_hex(8))
            odoo_zip.export_zip(self._saas_pg_params(), made, path, self._saas_manifest())
            name = "%s_%s.zip" % (self.database_name, made.stamp)
        handle = open(path, "rb")  # noqa: SIM115 (closed by the response)
        if fmt == "odoo":
            os.remove(path)
        size = os.fstat(handle.fileno()).st_size
        target = self._saas_owner()
        if target:
            target.sudo().message_post(body=self.env._(
                "Backup %(backup)s downloaded (%(fmt)s) by %(user)s.",
                backup=self.display_name, fmt=fmt, user=self.env.user.name))
        return handle, name, size

    def _saas_manifest(self):
        """Odoo's ``manifest.json`` for this backup (as ``odoo.service.db`` writes it)."""
        return odoo_zip.odoo_manifest(self._saas_engine_backup(), self.database_name,
                                      release.version_info, release.version)
