"""Off-site copies of backups (S3-compatible object storage) and local files' lifetime.

The object store is configured in odoo.conf only (``saas_s3_*``, see
``saas_settings.offsite_store``): its credentials never reach the database.
A backup is copied right after it is taken (a step of the backup operation);
one that could not be copied (store unreachable) is copied by the hourly
maintenance, which also removes local files that are copied off-site and
older than ``saas.backup_local_hours``.  Whatever needs the files (a
restore, a drill, a download) fetches them back first, checked against the
SHA-256 recorded when the backup was taken.

Object keys: ``<prefix>/<database>/<file name>``, the file names of the
local copies, so a listing of the bucket reads like the backup folder.
"""

import logging
import os
from datetime import timedelta

from odoo import api, fields, models

from ..engine import backup as engine_backup
from ..engine import offsite
from .saas_settings import offsite_store

_logger = logging.getLogger(__name__)

#: Backups copied per maintenance run at most (the rest wait for the next hour).
UPLOAD_BATCH = 50


class SaasBackup(models.Model):
    _inherit = "saas.backup"

    offsite_state = fields.Selection(
        [("local", "Not Copied"), ("copied", "Copied"), ("failed", "Copy Failed")],
        string="Off-site", default="local", required=True, readonly=True, index=True,
        saas_protected=True)
    offsite_at = fields.Datetime(string="Copied Off-site", readonly=True, saas_protected=True)
    offsite_error = fields.Text(readonly=True, saas_protected=True)
    offsite_dump_key = fields.Char(string="Off-site Dump Key", readonly=True,
                                   saas_protected=True)
    offsite_filestore_key = fields.Char(string="Off-site Archive Key", readonly=True,
                                        saas_protected=True)
    local_since = fields.Datetime(
        readonly=True, saas_protected=True,
        help="Since when the local files are there (taken, or fetched back from off-site).")

    @api.model
    def _saas_store(self):
        return offsite_store()

    # -- copy ---------------------------------------------------------------------------
    def _saas_copy_offsite(self):
        """Copy this backup's two files off-site when a store is configured; a failure is
        recorded on the backup (the hourly maintenance tries again), never raised: the
        backup itself is good."""
        self.ensure_one()
        store = self._saas_store()
        if not store or self.offsite_state == "copied" or self.local_state != "present":
            return False
        keys = [store.key(self.database_name, os.path.basename(path))
                for path in (self.dump_path, self.filestore_path)]
        # Known before anything is sent: a half-made copy is deleted with the backup.
        self.sudo().write({"offsite_dump_key": keys[0], "offsite_filestore_key": keys[1]})
        try:
            offsite.upload(store, self.dump_path, keys[0], int(self.dump_size),
                           self.dump_sha256)
            offsite.upload(store, self.filestore_path, keys[1], int(self.filestore_size),
                           self.filestore_sha256)
        except (offsite.OffsiteError, OSError) as exc:
            _logger.warning("Backup %s not copied off-site: %s", self.display_name, exc)
            self.sudo().write({"offsite_state": "failed", "offsite_error": str(exc)})
            return False
        self.sudo().write({"offsite_state": "copied", "offsite_at": fields.Datetime.now(),
                           "offsite_error": False})
        return True

    def _saas_remove_offsite(self):
        """Delete the off-site copies (retention is mirrored off-site)."""
        keys = [key for key in (self.offsite_dump_key, self.offsite_filestore_key) if key]
        if not keys:
            return
        store = self._saas_store()
        if not store:
            raise OSError("the off-site copies of %s cannot be deleted: no object store is "
                          "configured any more" % self.display_name)
        try:
            offsite.delete(store, keys)
        except offsite.OffsiteError as exc:
            raise OSError(str(exc)) from exc

    # -- local files ----------------------------------------------------------------------
    def _saas_remove_local_files(self):
        for path in (self.dump_path, self.filestore_path):
            if path and os.path.lexists(path):
                os.remove(path)

    def _saas_local_copy(self, verify=True):
        """The engine ``Backup`` of this record with its files on this server, fetched back
        from off-site first when only the copy there is left.  Unless ``verify`` is false
        (the drill verifies, and reports, itself), both files are checked against the sizes
        and SHA-256 recorded when the backup was taken: nothing is restored from a file
        that changed since (``engine.backup.BackupError``)."""
        self.ensure_one()
        if self.local_state == "removed" or not os.path.isfile(self.dump_path):
            self._saas_fetch()
        made = self._saas_engine_backup()
        if verify:
            engine_backup.verify(made)
        return made

    def _saas_fetch(self):
        store = self._saas_store()
        if not (store and self.offsite_state == "copied"):
            raise offsite.OffsiteError(self.env._(
                "The files of %(backup)s are not on the server and it has no off-site copy.",
                backup=self.display_name))
        os.makedirs(os.path.dirname(self.dump_path), mode=0o700, exist_ok=True)
        fetched = []
        try:
            for key, path, size, digest in (
                    (self.offsite_dump_key, self.dump_path, self.dump_size, self.dump_sha256),
                    (self.offsite_filestore_key, self.filestore_path, self.filestore_size,
                     self.filestore_sha256)):
                if os.path.lexists(path):
                    os.remove(path)  # a partial or stale local file: the copy is the truth
                offsite.download(store, key, path, int(size), digest)
                fetched.append(path)
        except BaseException:
            for path in fetched:
                os.remove(path)
            raise
        self.sudo().write({"local_state": "present", "local_since": fields.Datetime.now()})

    # -- maintenance ------------------------------------------------------------------------
    @api.model
    def _cron_maintain(self):
        """Hourly: copy what is not off-site yet, drop local files past their hours, prune."""
        copied = self._saas_copy_pending()
        removed = self._saas_expire_local()
        pruned = self._cron_prune()
        _logger.info("Backup maintenance: %s copied off-site, %s local copies removed, "
                     "%s backups pruned", copied, removed, pruned)
        return {"copied": copied, "removed": removed, "pruned": pruned}

    @api.model
    def _saas_copy_pending(self):
        if not self._saas_store():
            return 0
        copied = 0
        for backup in self.sudo().search([("offsite_state", "in", ("local", "failed")),
                                          ("local_state", "=", "present")],
                                         order="stamp", limit=UPLOAD_BATCH):
            copied += backup._saas_copy_offsite()
            self._commit()
        return copied

    @api.model
    def _saas_expire_local(self):
        """Remove local files of backups copied off-site longer than the local hours."""
        hours = self.env["saas.settings"]._get("saas.backup_local_hours")
        if hours <= 0:
            return 0
        limit = fields.Datetime.now() - timedelta(hours=hours)
        backups = self.sudo().search([("offsite_state", "=", "copied"),
                                      ("local_state", "=", "present"),
                                      ("local_since", "<", limit),
                                      ("id", "not in", self._saas_in_use_ids())])
        removed = 0
        for backup in backups:
            if backup._saas_offsite_intact():
                backup._saas_remove_local_files()
                backup.local_state = "removed"
                removed += 1
        return removed

    def _saas_offsite_intact(self):
        """Both objects are still in the store with the recorded sizes (looked at again
        before the last local copy goes)."""
        store = self._saas_store()
        try:
            return store and all(
                offsite.head(store, key) == int(size) for key, size in (
                    (self.offsite_dump_key, self.dump_size),
                    (self.offsite_filestore_key, self.filestore_size)))
        except offsite.OffsiteError as exc:
            _logger.info("Backup %s keeps its local files: %s", self.display_name, exc)
            return False

    @api.model
    def _saas_in_use_ids(self):
        """Backups an open operation will read (a restore, a drill, a copy being made):
        neither pruned nor emptied of their local files meanwhile."""
        operations = self.env["saas.operation"].sudo().search(
            [("state", "in", ("queued", "running")), ("kind", "in", ("restore", "drill",
                                                                      "provision"))])
        return [op.params["backup_id"] for op in operations
                if isinstance(op.params, dict) and op.params.get("backup_id")]
