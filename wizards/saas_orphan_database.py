"""Orphan databases: on a server, carrying this manager's marker, owned by no instance.

Every client database carries the PostgreSQL comment ``saas_manager instance
<id> of <manager database>`` (``saas.instance._owner_marker``).  One whose
instance record is gone, or no longer owns it (another ``owned_database``, or
none: terminated, cleaned up), is an *orphan*: saas_manager never drops or
serves it by itself.  A SaaS administrator lists them from the server form and
either **adopts** one (a new active instance owning it, the marker rewritten to
that instance) or **drops** it after a verified backup.

Not orphans: a database an instance of this server owns (whatever its marker
says), and the databases of an instance with an unfinished operation (queued,
running or failed: a restore's staging and replaced copies carry the
instance's marker; the operation, or its Retry, removes them).

Each line is re-checked just before it is acted upon (same marker, still this
role's, still owned by no instance): the list may be minutes old.
"""

import logging
import re

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from ..engine import filestore, naming, pg
from ..models.saas_instance_provisioning import OWNER_MARKER_PREFIX

_logger = logging.getLogger(__name__)

ADMIN_GROUP = "saas_manager.group_saas_admin"
#: First key of the advisory lock taken on a database name while it is adopted or dropped.
ORPHAN_LOCK_KEY = 0x5AA8
#: Operations that will still act on an instance's databases.
UNFINISHED_STATES = ("queued", "running", "failed")


class SaasOrphanDatabase(models.TransientModel):
    _name = "saas.orphan.database"
    _inherit = ["saas.server.mixin"]
    _description = "Orphan Client Database"
    _order = "database_name"

    server_id = fields.Many2one("saas.server", required=True, readonly=True,
                                ondelete="cascade")
    database_name = fields.Char(string="Database", required=True, readonly=True)
    marker = fields.Char(readonly=True, help="The database's comment when it was listed.")
    marked_instance = fields.Integer(string="Instance ID in Marker", readonly=True)
    reason = fields.Char(string="Why an Orphan", readonly=True)
    size_mb = fields.Float(string="Size (MB)", digits=(16, 1), readonly=True)
    # What an adoption creates.
    name = fields.Char(string="Instance Name")
    subdomain = fields.Char(
        help="The subdomain whose database name, under the current routing mode, is this "
             "database's name.")
    partner_id = fields.Many2one("res.partner", string="Customer")
    plan_id = fields.Many2one("saas.plan")
    template_id = fields.Many2one(
        "saas.template", help="The vertical the instance counts as.")

    # -- access --------------------------------------------------------------------
    @api.model
    def _saas_check_admin(self, server):
        """SaaS administrators only, with write access to ``server``."""
        if not self.env.user.has_group(ADMIN_GROUP):
            raise AccessError(self.env._(
                "Only SaaS administrators may list, adopt or drop orphan databases."))
        server.check_access("write")

    # -- scan ------------------------------------------------------------------------
    @api.model
    def _saas_marker_re(self):
        return re.compile(r"%s(\d+) of %s" % (re.escape(OWNER_MARKER_PREFIX),
                                              re.escape(self.env.cr.dbname)))

    @api.model
    def _saas_orphans(self, server):
        """``{name: (marker, instance id, size in bytes, reason)}`` of ``server``'s orphans."""
        params = server._server().pg_params()
        with pg.maintenance(params) as conn:
            rows = pg.commented(conn, OWNER_MARKER_PREFIX)
        marker_re = self._saas_marker_re()
        found = {}
        for name, marker, size in rows:
            match = marker_re.fullmatch(marker)
            if not match:
                continue  # another manager's database, or another form
            reason = self._saas_orphan_reason(server, name, int(match.group(1)))
            if reason:
                found[name] = (marker, int(match.group(1)), size, reason)
        return found

    @api.model
    def _saas_orphan_reason(self, server, name, instance_id):
        """Why ``name`` (marked for ``instance_id``) is an orphan; ``None`` when it is not."""
        instances = self.env["saas.instance"].sudo().with_context(active_test=False)
        if instances.search_count([("server_id", "=", server.id),
                                   ("owned_database", "=", name)]):
            return None
        instance = instances.browse(instance_id).exists()
        if not instance:
            return self.env._("Instance %(id)s no longer exists.", id=instance_id)
        if instance.operation_ids.filtered(lambda op: op.state in UNFINISHED_STATES):
            return None
        states = dict(instance._fields["state"]._description_selection(self.env))
        return self.env._(
            "Instance %(name)s (%(state)s) owns %(owned)s.", name=instance.name,
            state=states[instance.state], owned=instance.owned_database or self.env._("nothing"))

    @api.model
    def _saas_subdomain_for(self, name):
        """The subdomain whose database, under the current routing, is ``name`` (or False)."""
        params = self.env["saas.instance"]._saas_params()
        candidate = name
        if params["routing"] == naming.ROUTING_HOST:
            suffix = "." + params["base_domain"]
            candidate = name[:-len(suffix)] if name.endswith(suffix) else ""
        try:
            maps = naming.database_name(candidate, params["base_domain"],
                                        params["routing"]) == name
        except naming.NamingError:
            maps = False
        return candidate if maps else False

    @api.model
    def _saas_scan(self, server):
        """This user's lines of ``server``'s orphans, listed again now."""
        self._saas_check_admin(server)
        self.search([("server_id", "=", server.id), ("create_uid", "=", self.env.uid)]).unlink()
        vals_list = []
        for name, (marker, instance_id, size, reason) in sorted(
                self._saas_orphans(server).items()):
            subdomain = self._saas_subdomain_for(name)
            vals_list.append({
                "server_id": server.id, "database_name": name, "marker": marker,
                "marked_instance": instance_id, "reason": reason, "size_mb": size / 2**20,
                "subdomain": subdomain, "name": subdomain and subdomain.title()})
        return self.create(vals_list)

    @api.model
    def _saas_list_action(self, server):
        lines = self.search([("server_id", "=", server.id), ("create_uid", "=", self.env.uid)])
        return {
            "type": "ir.actions.act_window", "res_model": self._name,
            "name": self.env._("Orphan Databases of %(server)s", server=server.name),
            "view_mode": "list", "target": "current", "domain": [("id", "in", lines.ids)],
            "views": [(self.env.ref("saas_manager.saas_orphan_database_view_list").id, "list")],
            "context": {"create": False},
        }

    # -- the re-check ----------------------------------------------------------------
    def _saas_check_still_orphan(self):
        """Refuse unless the database still carries the marker it was listed with, is still
        this role's, and is still owned by no instance."""
        self.ensure_one()
        self._saas_check_admin(self.server_id)
        # One adoption or drop of a database at a time, until this transaction ends: the
        # marker read below, on a fresh connection, then shows what the other one did.
        self.env.cr.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                            [ORPHAN_LOCK_KEY, self.database_name])
        with pg.maintenance(self._saas_pg_params()) as conn:
            now = [row for row in pg.commented(conn, self.marker)
                   if row[0] == self.database_name and row[1] == self.marker]
        match = self._saas_marker_re().fullmatch(self.marker or "")
        if not now or not match or not self._saas_orphan_reason(
                self.server_id, self.database_name, int(match.group(1))):
            raise UserError(self.env._(
                "%(db)s is no longer an orphan (its marker changed, it is gone, or an instance "
                "owns it now): nothing was done. Find the orphan databases again.",
                db=self.database_name))
        problem = naming.database_problem(self.database_name)
        if problem:
            raise UserError(self.env._(
                "%(db)s cannot be handled here (%(problem)s): see to it by hand.",
                db=naming.shown(self.database_name), problem=problem))

    # -- adopt ----------------------------------------------------------------------
    def action_open_adopt(self):
        self.ensure_one()
        self._saas_check_admin(self.server_id)
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "new",
                "views": [(self.env.ref("saas_manager.saas_orphan_database_view_form").id,
                           "form")]}

    def action_adopt(self):
        self.ensure_one()
        instance = self._saas_adopt()
        return {"type": "ir.actions.act_window", "res_model": "saas.instance",
                "res_id": instance.id, "view_mode": "form", "views": [(False, "form")],
                "target": "current"}

    def _saas_adopt(self):
        """A new active instance owning this database; the marker names it afterwards."""
        self.ensure_one()
        self._saas_check_still_orphan()
        Instance = self.env["saas.instance"]
        Instance.check_access("create")
        if not (self.name and self.subdomain and self.partner_id and self.plan_id
                and self.template_id):
            raise UserError(self.env._(
                "Give the instance a name, subdomain, customer, plan and template."))
        name, server = self.database_name, self.server_id
        params = Instance._saas_params()
        try:
            mapped = naming.database_name(self.subdomain, params["base_domain"],
                                          params["routing"])
        except naming.NamingError as exc:
            raise UserError(str(exc)) from exc
        if mapped != name:
            raise UserError(self.env._(
                "Under the current routing (%(routing)s, base domain %(base)s) the subdomain "
                "%(sub)s is served from the database %(mapped)s, not %(db)s: the instance "
                "would not reach it. Use the subdomain %(expected)s, or rename the database "
                "by hand first.", routing=params["routing"], base=params["base_domain"],
                sub=self.subdomain, mapped=mapped, db=name,
                expected=self._saas_subdomain_for(name) or self.env._("(none maps to it)")))
        old_marker = self.marker
        instance = Instance.sudo().create({
            "name": self.name, "subdomain": self.subdomain, "partner_id": self.partner_id.id,
            "plan_id": self.plan_id.id, "template_id": self.template_id.id,
            "server_id": server.id, "user_id": self.env.uid, "company_id": self.env.company.id,
        })
        server._check_capacity(instance)
        instance.write({"state": "active", "owned_database": name})
        # Last: should this transaction be lost, the marker names an id that does not
        # exist, and the database is an orphan again.
        with pg.maintenance(self._saas_pg_params()) as conn:
            pg.set_comment(conn, name, instance._owner_marker())
        instance.message_post(body=self.env._(
            "Adopted the orphan database %(db)s by %(user)s (its marker was %(marker)r).",
            db=name, user=self.env.user.name, marker=old_marker))
        _logger.info("Orphan database %s adopted by instance %s", name, instance.id)
        self.unlink()
        return instance.with_env(self.env)

    # -- drop after backup ------------------------------------------------------------
    def action_drop_after_backup(self):
        self.ensure_one()
        server = self.server_id
        name, made, leftover = self._saas_drop_after_backup()
        message = self.env._(
            "%(db)s was dropped after a verified backup. The backup is not a Backups record "
            "(a record belongs to an instance or a template); its files are kept on the "
            "server: %(dump)s (SHA-256 %(dump_sha)s) and %(archive)s (SHA-256 "
            "%(archive_sha)s).", db=name, dump=made.dump_path,
            dump_sha=made.dump_sha256, archive=made.filestore_path,
            archive_sha=made.filestore_sha256)
        if leftover:
            message += " " + self.env._("Its filestore could not be removed (%(error)s): "
                                        "remove it by hand.", error=leftover)
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"message": message, "type": "success", "sticky": True,
                           "next": self._saas_list_action(server)}}

    def _saas_drop_after_backup(self):
        """Verified backup (kept as files), then drop the database and its filestore.

        Returns ``(database name, the engine's Backup, why the filestore is left or
        False)``.  The
        database is hidden from Odoo and its sessions ended meanwhile; a failed
        backup or drop raises and leaves it as it was (flags included).
        """
        self.ensure_one()
        self._saas_check_still_orphan()
        name = self.database_name
        try:
            with self._saas_backup_window(name):
                made = self._saas_backup(name)
                self._saas_release(name)
                with pg.maintenance(self._saas_pg_params()) as conn:
                    pg.drop(conn, name)
        except (pg.PgError, OSError) as exc:
            raise UserError(self.env._("%(db)s was not dropped: %(error)s", db=name,
                                       error=str(exc))) from exc
        _logger.info("Orphan database %s dropped after a backup: %s, %s", name,
                     made.dump_path, made.filestore_path)
        leftover = False
        try:
            filestore.remove_tree(self._saas_filestore(name))
        except OSError as exc:  # the database is gone: say what is left, do not undo
            leftover = str(exc)
        self.unlink()
        return name, made, leftover
