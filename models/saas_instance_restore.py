"""Restores: a backup back in place, a backup as a new instance, an Odoo zip imported.

**In place** (operation *restore*): the backup is restored into a staging
database next to the live one, which keeps serving meanwhile; the two are
swapped in a few renames (``engine.backup.replace``).  The replaced copy,
which refuses connections from the swap on and so holds everything written
until then, is then backed up (the *safety backup*) and only then dropped:
nothing written before the restore is lost.  The names are recorded on the
operation before anything is created, so a worker killed at any point is
recovered by the next attempt (``engine.backup.recover_replace``) before
anything is checked again.  The instance keeps its subdomain, its record's
credentials and its subscription; the database's content, its users and
their passwords included, is the backup's.

**As a new instance** and **import** are provisionings whose first step
restores the backup (or imports the zip) instead of cloning the template;
see ``saas_instance_provisioning.py``.  The copy is sanitized like any clone
(new uuid and secret, which sign sessions and links; integration secrets
removed; mail servers disabled).  A *staging* copy is neutralized too:
scheduled actions off and outgoing mail caught (Odoo's own neutralization),
so a copy of a production database never e-mails the customer's customers.
Users keep their passwords (the data is the customer's own).
"""

import os
import re
import secrets

import psycopg2

from odoo import api, models
from odoo.exceptions import UserError
from odoo.modules import neutralize

from ..engine import backup as engine_backup
from ..engine import filestore, odoo_zip, pg, sanitize
from .saas_instance_provisioning import PENDING_DATABASE

#: Names of a restore in place's databases: instance id, random.
STAGING_DATABASE = "saas_rst_%d_%s"
REPLACED_DATABASE = "saas_old_%d_%s"
#: Uploaded Odoo backup zips waiting for their import (backup folder / imports).
IMPORT_FILE = "import-%s.zip"
IMPORT_FILE_RE = re.compile(r"import-[0-9a-f]{16}\.zip")


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    def _saas_restore_in_place(self, backup):
        """Queue the restore of ``backup`` (one of this instance's) over its database."""
        self.ensure_one()
        self._check_states(("active", "suspended"), self.env._(
            "Only an active or suspended instance can be restored in place."))
        if backup.instance_id != self or not backup.verified_at:
            raise UserError(self.env._("Only a verified backup of this instance can be "
                                       "restored over it."))
        operation = self.env["saas.operation"]._queue(self, "restore",
                                                      {"backup_id": backup.id})
        if operation.params.get("backup_id") != backup.id:
            raise UserError(self.env._(
                "A restore of another backup of %(name)s is already queued: cancel it first.",
                name=self.name))
        self.message_post(body=self.env._(
            "Restore of %(backup)s requested by %(user)s.", backup=backup.display_name,
            user=self.env.user.name))
        return operation

    def _saas_op_restore(self, run):
        """Recover a killed attempt, restore beside the live database and swap, then back
        up the replaced copy and drop it; see the module docstring."""
        params = run.operation.params or {}
        swapped = params.get("swapped") or (params.get("staging") and self._restore_recover(
            run))
        if not swapped:
            made = self._restore_check_and_fetch(run)
            self._restore_swap(run, made)
        replaced = run.operation.params["replaced"]
        with run.step("safety backup"):
            safety = self._restore_backup_replaced(replaced, run.operation)
        with run.step("drop replaced"):
            engine_backup.discard(self._saas_pg_params(), replaced,
                                  self._saas_filestore(replaced))
        self._saas_restored_after_update()
        backup = self.env["saas.backup"].sudo().browse(params.get("backup_id"))
        self.message_post(body=self.env._(
            "Restored from %(backup)s (%(down).2f s without service); the database as it was "
            "until the swap is kept as %(safety)s.", backup=backup.display_name,
            down=run.operation.params.get("downtime", 0), safety=safety.display_name or "-"))

    def _restore_recover(self, run):
        """What a killed attempt left: taken back (False) or swapped already (True)."""
        params = run.operation.params
        name = self._owned_database_name()
        with run.step("recover"):
            self._saas_remove_partial_backup(run.operation)
            return engine_backup.recover_replace(
                self._saas_pg_params(), name, self._saas_filestore(name), params["staging"],
                params["replaced"], comment=self._owner_marker(),
                allowed=self.state == "active")

    def _restore_check_and_fetch(self, run):
        params = run.operation.params or {}
        backup = self.env["saas.backup"].sudo().browse(params.get("backup_id")).exists()
        if self.state not in ("active", "suspended") or backup.instance_id != self:
            raise UserError(self.env._("The backup or the instance no longer allows a "
                                       "restore in place."))
        with run.step("fetch"):
            made = backup._saas_local_copy(verify=False)  # replace() verifies it
            # Recorded (committed with the next step) before anything is created, so a
            # killed attempt's databases are found and undone by the next one.
            run.operation.params = dict(
                params, staging=STAGING_DATABASE % (self.id, secrets.token_hex(4)),
                replaced=REPLACED_DATABASE % (self.id, secrets.token_hex(4)))
        return made

    def _restore_swap(self, run, made):
        """Restore beside the live database and swap; the replaced copy is kept (it holds
        what was written until the swap) and marked as swapped on the operation."""
        params = run.operation.params
        name = self._owned_database_name()
        with run.step("restore"):
            self._saas_release(name)
            replaced = engine_backup.replace(
                self._saas_pg_params(), made, name, self._saas_filestore(name),
                params["staging"], params["replaced"], comment=self._owner_marker(),
                keep_old=True)
        run.operation.params = dict(params, swapped=True, downtime=replaced.downtime)

    def _restore_backup_replaced(self, replaced, operation):
        """The safety backup: the replaced copy as it was at the swap, recorded."""
        made = self._saas_backup_replaced(replaced, operation)
        if not made:
            return self.env["saas.backup"]  # backed up and dropped by a killed attempt
        return self.env["saas.backup"]._saas_record(self, "before_operation", made, operation)

    def _saas_backup_replaced(self, replaced, operation):
        """The engine backup of a replaced copy (it refuses connections; it is opened to
        pg_dump only, and matches no host), or None when it is gone already."""
        with pg.maintenance(self._saas_pg_params()) as conn:
            if not pg.exists(conn, replaced):
                return None
            pg.allow_connections(conn, replaced, True)
        return self._saas_backup(replaced, operation)

    # -- as a new instance, or imported: provisionings from a copy ------------------------
    def _saas_restore_as_new(self, backup, vals, staging):
        """A new instance (``vals``: name, subdomain...) made from ``backup``, queued."""
        if not backup.verified_at:
            raise UserError(self.env._("Only a verified backup can be restored."))
        instance = self.create(vals)
        if backup.server_id and instance.server_id != backup.server_id:
            instance.sudo().server_id = backup.server_id  # where the backup's files are
        instance._saas_provision_copy({"backup_id": backup.id, "staging": staging})
        instance.message_post(body=self.env._(
            "Made from the backup %(backup)s%(staging)s.", backup=backup.display_name,
            staging=self.env._(" as a staging copy (crons off, outgoing mail caught)")
            if staging else ""))
        return instance

    def _saas_import(self, vals, import_file):
        """A new instance (``vals``) made from an uploaded Odoo backup zip, queued."""
        instance = self.create(vals)
        instance._saas_provision_copy({"import_file": import_file})
        instance.message_post(body=self.env._("Imported from an Odoo backup zip."))
        return instance

    def _saas_provision_copy(self, params):
        self.ensure_one()
        self.sudo().state = "provisioning"
        return self.env["saas.operation"]._queue(self, "provision", params)

    def _provision_restore(self, attempt):
        backup = self.env["saas.backup"].sudo().browse(attempt.params["backup_id"]).exists()
        if not backup.verified_at:
            raise UserError(self.env._("The backup to restore no longer exists."))
        made = backup._saas_local_copy()
        self._provision_from_copy(attempt, lambda params, database, folder: (
            engine_backup.restore(params, made, database, folder)))

    def _provision_import(self, attempt):
        path = self._saas_import_path(attempt.params["import_file"])
        limits = odoo_zip.Limits(max_total_bytes=self.env["saas.settings"]._get(
            "saas.backup_import_max_mb") * 2**20)
        self._provision_from_copy(attempt, lambda params, database, folder: (
            odoo_zip.import_zip(params, path, database, folder, limits)))

    def _provision_from_copy(self, attempt, restore):
        """Restore a copy under a pending name, hidden, marked, then renamed into place
        (the same guarantees as cloning: see ``_provision_clone``)."""
        target = self._provision_names()["database"]
        folder = self._saas_filestore(target)
        self.server_id._check_capacity(self)
        params = self._saas_pg_params()
        pending = PENDING_DATABASE % (self.id, secrets.token_hex(4))
        with pg.maintenance(params) as conn:
            if pg.exists(conn, target) or pg.exists(conn, pending) or os.path.lexists(folder):
                raise UserError(self.env._(
                    "A database or filestore named %(db)s already exists and was not created "
                    "for this instance: it is left untouched.", db=target))
        self._provision_mark_owned(pending)
        attempt.undo.append(self._provision_remove_database)
        attempt.undo.append(lambda: filestore.remove_tree(folder))
        restore(params, pending, folder)
        with pg.maintenance(params) as conn:
            pg.mark_template(conn, pending, True)  # hidden from Odoo until sanitized
            pg.set_comment(conn, pending, self._owner_marker())
            pg.rename(conn, pending, target)
            self._provision_mark_owned(target)

    def _provision_sanitize_copy(self, attempt):
        """A new identity and no shared secrets, like a clone; a staging copy neutralized.
        Users keep their passwords: the copy's data is the customer's own."""
        conn = psycopg2.connect(dbname=self.database_name, **self._saas_pg_params())
        try:
            sanitize.sanitize(conn, self.url)
            if attempt.params.get("staging"):
                sanitize.neutralize(conn, list(neutralize.get_neutralization_queries(
                    sanitize.installed_modules(conn))))
            login = sanitize.admin_login(conn)
        finally:
            conn.close()
        self.sudo().admin_login = login or False
        with pg.maintenance(self._saas_pg_params()) as maintenance:
            pg.mark_template(maintenance, self.database_name, False)

    def _saas_copy_done(self, attempt):
        """A copy needs no welcome link (its users have their passwords); an import's
        uploaded zip is removed."""
        if attempt.params.get("import_file"):
            self._saas_remove_import(attempt.params["import_file"])

    # -- uploaded zips ----------------------------------------------------------------------
    def _saas_import_dir(self):
        return os.path.join(self._saas_backup_dir(), "imports")

    def _saas_import_path(self, name):
        """The uploaded zip ``name`` (only names this module gives are accepted)."""
        if not IMPORT_FILE_RE.fullmatch(name or ""):
            raise UserError(self.env._("Invalid import file name %(name)r.", name=name))
        return os.path.join(self._saas_import_dir(), name)

    @api.model
    def _saas_store_import(self, data):
        """Write an uploaded zip (bytes) into the import folder (mode 0600); its name."""
        folder = self._saas_import_dir()
        os.makedirs(folder, mode=0o700, exist_ok=True)
        name = IMPORT_FILE % secrets.token_hex(8)
        with open(os.path.join(folder, name), "xb", opener=lambda path, flags: os.open(
                path, flags, 0o600)) as handle:
            handle.write(data)
        return name

    def _saas_remove_import(self, name):
        path = self._saas_import_path(name)
        if os.path.lexists(path):
            os.remove(path)

    def _saas_copy_cancelled(self, operation):
        """A cancelled import's uploaded zip goes (a failed one stays, for Retry)."""
        if (operation.params or {}).get("import_file"):
            self._saas_remove_import(operation.params["import_file"])
