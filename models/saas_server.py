"""``saas.server``: the place databases live (one PostgreSQL cluster).

The record holds data only (name, capacity, what was measured); everything
that names an address, a credential, a path or a command stays in odoo.conf,
in the section the record names (``config_section``; empty: ``[options]``,
the local server).  So nothing written in the database can make the manager
run a command or connect somewhere new: a new cluster needs a new odoo.conf
section, that is, the server's administrator.  See CONFIGURATION.md, "Servers".
"""

import logging
import re

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..engine import naming, usage
from ..engine.server import DEFAULT_BUILD_TIMEOUT, DEFAULT_UPDATE_TIMEOUT, Proxy, Server
from .saas_settings import conf, conf_sections, config_file

_logger = logging.getLogger(__name__)

LOCAL_XMLID = "saas_manager.server_local"
CODE_RE = re.compile(r"\A[a-z0-9_-]{1,64}\Z")
#: What a server section must set itself (the defaults describe this machine only).
REQUIRED_SECTION_KEYS = ("data_dir", "saas_odoo_url")
#: Instances that take a place on their server: their database exists, or is being
#: created (``owned_database`` is recorded just before the clone).  Draft, failed
#: (cleaned up) and terminated instances hold nothing there.
OCCUPYING_DOMAIN = ["|", ("state", "in", ("active", "suspended")),
                    ("owned_database", "!=", False)]


def server_from_conf(name, section=None):
    """The engine :class:`Server` of an odoo.conf section (``None``: ``[options]``).

    A section is read on its own: a key it lacks takes its built-in default,
    never the ``[options]`` value, so a password or URL meant for one cluster
    is never used for another.  Only what concerns this machine's child
    processes (addons path, build timeout) comes from ``[options]``.
    """
    def get(key, default=None):
        return conf(key, default, section)

    http_port = get("http_port", 8069)
    folder = get("saas_proxy_conf_dir")
    proxy = folder and Proxy(
        folder=folder,
        upstream=get("saas_proxy_upstream", "127.0.0.1:%s" % http_port),
        websocket_upstream=get("saas_proxy_websocket_upstream",
                               "127.0.0.1:%s" % get("gevent_port", 8072)),
        certificate=get("saas_proxy_certificate", ""),
        key=get("saas_proxy_certificate_key", ""),
        certificate_pattern=get("saas_proxy_domain_certificate",
                                Proxy.certificate_pattern),
        key_pattern=get("saas_proxy_domain_certificate_key", Proxy.key_pattern),
        validate=get("saas_proxy_validate_command", Proxy.validate),
        reload=get("saas_proxy_reload_command", Proxy.reload))
    return Server(
        name=name,
        pg={"host": get("db_host"), "port": get("db_port"), "user": get("db_user"),
            "password": get("db_password"), "sslmode": get("db_sslmode")},
        db_owner=get("db_user"),
        data_dir=get("data_dir"),
        backup_dir=get("saas_backup_dir", ""),
        odoo_url=get("saas_odoo_url", "http://127.0.0.1:%s" % http_port),
        public_scheme=get("saas_public_scheme", "https"),
        public_port=tcp_port("saas_public_port", get("saas_public_port", 0)),
        proxy=proxy or None,
        # Another cluster's child reads no odoo.conf: its [options] would point
        # it (password included) at the local cluster.
        child_rcfile=None if section else config_file(),
        addons_path=conf("addons_path"),
        build_timeout=int(conf("saas_build_timeout", DEFAULT_BUILD_TIMEOUT)),
        update_timeout=int(conf("saas_update_timeout", DEFAULT_UPDATE_TIMEOUT)))


def tcp_port(key, value):
    """The port number an odoo.conf option gives as text (a ValueError naming it if not)."""
    if not str(value).isdigit():
        raise ValueError("%s must be a port number, not %r" % (key, value))
    return int(value)


class SaasServer(models.Model):
    _name = "saas.server"
    _description = "SaaS Server"
    _order = "sequence, id"

    name = fields.Char(required=True)
    code = fields.Char(required=True, help="Short unique technical code, e.g. 'eu2'.")
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    config_section = fields.Char(
        string="odoo.conf Section",
        help="The odoo.conf section that says where this server is (PostgreSQL, data "
             "directory, the Odoo that serves its databases, proxy). Empty: [options], "
             "this manager's own server.")
    is_local = fields.Boolean(compute="_compute_is_local")
    max_instances = fields.Integer(
        string="Capacity", help="Instances this server may hold (0: unlimited).")
    instance_ids = fields.One2many("saas.instance", "server_id", string="Instances")
    instance_count = fields.Integer(
        compute="_compute_instance_count",
        help="Instances whose database is on this server: active, suspended, or being "
             "created.")
    active_instance_count = fields.Integer(string="Active Instances",
                                           compute="_compute_instance_count")
    suspended_instance_count = fields.Integer(string="Suspended Instances",
                                              compute="_compute_instance_count")
    deployment_ids = fields.One2many("saas.template.deployment", "server_id",
                                     string="Template Deployments")
    backup_size_mb = fields.Float(
        string="Backup Storage (MB)", compute="_compute_backup_size_mb", digits=(16, 3),
        help="Backups kept in this server's backup folder (off-site copies aside).")
    disk_used_mb = fields.Float(
        string="Disk Used (MB)", readonly=True, copy=False, digits=(16, 1),
        help="Databases and filestores of its instances and template deployments, as "
             "last measured.")
    disk_measured_at = fields.Datetime(string="Disk Measured", readonly=True, copy=False)
    disk_free_mb = fields.Float(string="Disk Free (MB)", readonly=True, copy=False,
                                digits=(16, 1), help="Free space of the data directory's disk.")
    disk_total_mb = fields.Float(string="Disk Size (MB)", readonly=True, copy=False,
                                 digits=(16, 1))
    disk_used_percent = fields.Float(string="Disk Used (%)", digits=(5, 1),
                                     compute="_compute_disk_used_percent")
    # Where it points, read from odoo.conf for display (never the password).
    pg_address = fields.Char(string="PostgreSQL", compute="_compute_location")
    pg_user = fields.Char(string="PostgreSQL Role", compute="_compute_location")
    data_dir = fields.Char(string="Data Directory", compute="_compute_location")
    backup_dir = fields.Char(string="Backup Directory", compute="_compute_location")
    odoo_url = fields.Char(string="Odoo URL", compute="_compute_location",
                           help="The Odoo server that serves this server's databases.")
    config_error = fields.Char(compute="_compute_location")

    _sql_constraints = [
        ("code_uniq", "unique(code)", "The server code must be unique."),
        ("config_section_uniq", "unique(config_section)",
         "Another server already reads this odoo.conf section."),
        ("max_instances_positive", "CHECK(max_instances >= 0)",
         "The capacity cannot be negative (0: unlimited)."),
    ]

    @api.depends("config_section")
    def _compute_is_local(self):
        for server in self:
            server.is_local = not server.config_section

    def _compute_instance_count(self):
        counts = {}
        for server, state, count in self.env["saas.instance"].sudo()._read_group(
                [("server_id", "in", self.ids), *OCCUPYING_DOMAIN], ["server_id", "state"],
                ["__count"]):
            counts.setdefault(server, {})[state] = count
        for server in self:
            by_state = counts.get(server, {})
            server.instance_count = sum(by_state.values())
            server.active_instance_count = by_state.get("active", 0)
            server.suspended_instance_count = by_state.get("suspended", 0)

    @api.depends("config_section", "code")
    def _compute_location(self):
        for server in self:
            values = dict.fromkeys(("pg_address", "pg_user", "data_dir", "backup_dir",
                                    "odoo_url", "config_error"), False)
            try:
                value = server._server()
            except UserError as exc:
                values["config_error"] = str(exc)
            else:
                values.update(pg_address=value.address, pg_user=value.db_owner,
                              data_dir=value.data_dir, backup_dir=value.backup_dir,
                              odoo_url=value.odoo_url)
            server.update(values)

    @api.constrains("code")
    def _check_code(self):
        for server in self:
            if not CODE_RE.fullmatch(server.code or ""):
                raise ValidationError(self.env._(
                    "%(code)s is not a valid server code: use 1 to 64 lowercase letters, "
                    "digits, '_' and '-'.", code=naming.shown(server.code)))

    @api.constrains("config_section", "code")  # code: always given, so checked at create
    def _check_config_section(self):
        """The section must exist in odoo.conf, spelled exactly; one local server only."""
        sections = conf_sections()
        for server in self:
            section = server.config_section
            if not section:
                if self.with_context(active_test=False).search_count(
                        [("config_section", "=", False), ("id", "!=", server.id)]):
                    raise ValidationError(self.env._(
                        "There already is a local server (no odoo.conf section): give this "
                        "one the odoo.conf section that describes it."))
            elif section not in sections:
                raise ValidationError(self.env._(
                    "odoo.conf has no section [%(section)s]. Add it there first (see "
                    "CONFIGURATION.md, Servers); sections found: %(found)s.",
                    section=naming.shown(section), found=", ".join(sections) or "-"))

    def write(self, vals):
        if "config_section" in vals and self.filtered(
                lambda s: (s.config_section or False) != (vals["config_section"] or False)
                and (s.instance_count or s.deployment_ids)):
            raise UserError(self.env._(
                "A server holding instances or template deployments keeps its odoo.conf "
                "section: its databases are where that section says."))
        if vals.get("active") is False and self.filtered("is_local"):
            raise UserError(self.env._("The local server cannot be archived."))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_local(self):
        if self.filtered("is_local"):
            raise UserError(self.env._("The local server cannot be deleted."))

    def _compute_backup_size_mb(self):
        sizes = {server: dump + archive for server, dump, archive in
                 self.env["saas.backup"].sudo()._read_group(
                     [("server_id", "in", self.ids), ("local_state", "=", "present")],
                     ["server_id"], ["dump_size:sum", "filestore_size:sum"])}
        for server in self:
            server.backup_size_mb = sizes.get(server.sudo(), 0) / 2**20

    # -- the engine value ----------------------------------------------------------
    def _server(self):
        """The engine :class:`~..engine.server.Server` this record names (odoo.conf)."""
        self.ensure_one()
        section = self.config_section or None
        if section:
            if section not in conf_sections():
                raise UserError(self.env._(
                    "odoo.conf has no section [%(section)s] (server %(server)s).",
                    section=section, server=self.name))
            missing = [key for key in REQUIRED_SECTION_KEYS if not conf(key, None, section)]
            if missing:
                raise UserError(self.env._(
                    "The odoo.conf section [%(section)s] (server %(server)s) does not set "
                    "%(keys)s.", section=section, server=self.name, keys=", ".join(missing)))
        try:
            return server_from_conf(self.code, section)
        except ValueError as exc:
            raise UserError(self.env._("odoo.conf, server %(server)s: %(error)s",
                                       server=self.name, error=exc)) from exc

    @api.model
    def _local(self):
        """The local server's record (``[options]``), made if missing: an upgrade fills
        the new ``server_id`` columns before the module's data is loaded."""
        server = self.env.ref(LOCAL_XMLID, raise_if_not_found=False)
        if not server:
            server = self.sudo().with_context(active_test=False).search(
                [("config_section", "=", False)], limit=1)
        if not server:
            server = self.sudo().create({"name": "Local", "code": "local"})
            self.env["ir.model.data"].sudo()._update_xmlids(
                [{"xml_id": LOCAL_XMLID, "record": server, "noupdate": True}])
        return server

    def _check_capacity(self, instance):
        """Refuse ``instance`` here when the other instances fill the server.

        The server's row is locked until the transaction ends, so two instances
        provisioned at once are counted one after the other (the first records
        its database, and commits, before the second counts).
        """
        self.ensure_one()
        if not self.max_instances:
            return
        # An UPDATE, not SELECT ... FOR UPDATE: a runner whose snapshot predates the
        # previous holder's commit then fails with a serialization error (retried later)
        # instead of counting from its stale snapshot.
        self.env.cr.execute("UPDATE saas_server SET write_date = write_date WHERE id = %s",
                            (self.id,))
        taken = self.env["saas.instance"].sudo().search_count(
            [("server_id", "=", self.id), ("id", "!=", instance.id), *OCCUPYING_DOMAIN])
        if taken >= self.max_instances:
            raise UserError(self.env._(
                "The server %(server)s is full: %(count)s of %(max)s instances. Raise its "
                "capacity or use another server.",
                server=self.name, count=taken, max=self.max_instances))

    # -- measures --------------------------------------------------------------------
    def action_measure(self):
        """Measure the disk the server's databases and filestores take, now."""
        self.check_access("write")
        self.sudo()._measure_disk()
        return True

    def action_find_orphan_databases(self):
        """List the databases carrying this manager's marker that no instance owns
        (SaaS administrators; see wizards/saas_orphan_database.py)."""
        self.ensure_one()
        orphans = self.env["saas.orphan.database"]
        orphans._saas_scan(self)
        return orphans._saas_list_action(self)

    @api.model
    def _cron_measure(self):
        """Every active server, one after the other; a misconfigured one is logged and
        skipped (the others are still measured)."""
        for server in self.sudo().search([("active", "=", True)]):
            try:
                with self.env.cr.savepoint():
                    server._measure_disk()
            except UserError as exc:
                _logger.warning("Server %s not measured: %s", server.code, exc)

    def _measure_disk(self):
        for server in self:
            instances = self.env["saas.instance"].sudo().search(
                [("server_id", "=", server.id), *OCCUPYING_DOMAIN])
            names = [name for name in instances.mapped(
                lambda i: i.owned_database or i.database_name) if name]
            names += server.deployment_ids.filtered(
                lambda d: d.state != "missing").mapped("database_name")
            value = server._server()
            measured = usage.measure(value.pg, names, value.data_dir, count_users=False)
            total = sum(item.storage_bytes for item in measured.values())
            disk_total, disk_free = usage.disk_space(value.data_dir)
            server.write({"disk_used_mb": total / 2**20, "disk_total_mb": disk_total / 2**20,
                          "disk_free_mb": disk_free / 2**20,
                          "disk_measured_at": fields.Datetime.now()})
            server._disk_incident()

    @api.depends("disk_free_mb", "disk_total_mb")
    def _compute_disk_used_percent(self):
        for server in self:
            total = server.disk_total_mb
            server.disk_used_percent = total and 100.0 * (total - server.disk_free_mb) / total

    def _disk_incident(self):
        """An incident while the data directory's disk is fuller than the threshold."""
        threshold = self.env["saas.settings"]._get("saas.disk_alert_percent")
        incidents = self.env["saas.incident"]
        if self.disk_used_percent < threshold:
            incidents._saas_resolve("disk", self, self.env._(
                "Disk used: %(percent).1f %%.", percent=self.disk_used_percent))
            return
        incidents._saas_open(
            "disk", self, self.env._("The disk of server %(name)s is %(percent).0f %% full",
                                     name=self.name, percent=self.disk_used_percent),
            self.env._("%(free).0f MB free of %(total).0f MB; the threshold is %(threshold)s %%.",
                       free=self.disk_free_mb, total=self.disk_total_mb, threshold=threshold))
