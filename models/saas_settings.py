"""The one place saas_manager reads its settings from.

Two sources, kept apart on purpose (see CONFIGURATION.md):

* **odoo.conf**, the server's configuration file: everything that names a
  command, a path, a credential or an address (PostgreSQL, data_dir, backup
  folder, proxy commands, the Odoo URL that serves the clients, the key that
  encrypts secrets).  Nothing stored in the database can change these, so no
  database user can make the server run a command or reach a new address.
  Read with :func:`conf`; a ``saas.server`` names the section it reads
  (``[options]`` for the local server).
* **ir.config_parameter**, the Settings screen: business settings (base
  domain, grace days, retries...).  Read with ``saas.settings._get(key)``,
  typed, with its default from :data:`SETTINGS`, the one table of defaults,
  which ``res.config.settings`` shares.

No other module of saas_manager imports ``odoo.tools.config``.
"""

import os

from odoo import api, models
from odoo.tools import config

from ..engine import naming, offsite, pg

#: ir.config_parameter key -> (type, default).  Text is stored for every type
#: (Odoo deletes a parameter set to False or 0, which would bring the default
#: back), and read back through the type.
SETTINGS = {
    "saas.base_domain": (str, ""),
    "saas.routing_mode": (str, naming.ROUTING_HOST),
    "saas.reserved_subdomains": (str, ""),
    "saas.clone_strategy": (str, pg.DEFAULT_STRATEGY),
    "saas.invoice_auto_post": (bool, True),
    "saas.payment_grace_days": (int, 7),
    "saas.limit_policy": (str, "notify"),
    "saas.limit_suspend_days": (int, 7),
    "saas.health_alert_failures": (int, 3),
    "saas.health_retention_days": (int, 35),
    # A server whose data directory's disk is fuller than this opens an incident.
    "saas.disk_alert_percent": (int, 90),
    "saas.welcome_link_hours": (int, 72),
    # One-click login links (engine/login.py): seconds they stay valid.
    "saas.login_link_seconds": (int, 60),
    # Public sign-up (controllers/signup.py).
    "saas.signup_enabled": (bool, True),
    "saas.signup_link_hours": (int, 24),
    "saas.signup_unverified_max": (int, 3),
    "saas.signup_ip_limit": (int, 10),      # sign-up forms sent per address and hour
    "saas.signup_email_limit": (int, 5),    # sign-up forms sent per e-mail and day
    "saas.signup_terms_url": (str, ""),
    # Customer portal (controllers/portal.py): backups a customer may ask for per day.
    "saas.portal_backups_per_day": (int, 2),
    "saas.operation_max_attempts": (int, 5),
    "saas.operation_retry_seconds": (int, 30),
    # Days a backup of each kind is kept (saas.backup.expires_on); 0 = for good.
    # Scheduled backups follow their plan's daily/weekly/monthly retention instead.
    "saas.backup_final_retention_days": (int, 90),
    "saas.backup_manual_retention_days": (int, 30),
    "saas.backup_before_operation_retention_days": (int, 7),
    # Scheduled backups queued at most per run of the schedule (spread, bounded).
    "saas.backup_schedule_batch": (int, 20),
    # Backups restored by each weekly drill (at least one).
    "saas.backup_drill_sample": (int, 1),
    # Hours a backup copied off-site keeps its local files (0 = kept until pruned).
    "saas.backup_local_hours": (int, 48),
    # Largest Odoo backup zip accepted for an import, uncompressed (MB).
    "saas.backup_import_max_mb": (int, 20480),
}


def conf(key, default=None, section=None):
    """An odoo.conf option: from ``[options]``, or from ``section`` when given.

    Empty values count as missing, so ``default`` applies to ``key =`` too.
    """
    values = config.misc.get(section, {}) if section else config.options
    value = values.get(key)
    return default if value in (None, "", False) else value


def conf_flag(key, section=None):
    """A yes/no odoo.conf option (``True``, ``1``, ``yes``), false when absent."""
    return str(conf(key, "", section)).lower() in ("1", "true", "yes")


def conf_sections():
    """The odoo.conf sections other than ``[options]``."""
    return sorted(config.misc)


def server_key():
    """The key secrets are encrypted with: ``saas_manager_key`` (odoo.conf) or the
    ``SAAS_MANAGER_KEY`` environment variable; never from the database."""
    return conf("saas_manager_key") or os.environ.get("SAAS_MANAGER_KEY", "")


def runs_crons():
    """Whether this process is a server whose cron workers will run (not ``-i ...
    --stop-after-init``, not ``--max-cron-threads 0``)."""
    return not conf("stop_after_init") and bool(conf("max_cron_threads"))


def prefork():
    """Whether Odoo runs prefork workers (``workers`` > 0) rather than threads."""
    return bool(conf("workers"))


def offsite_store():
    """The object store backups are copied to (odoo.conf ``saas_s3_*``), or None when
    ``saas_s3_bucket`` is not set.  Credentials come from odoo.conf only."""
    bucket = conf("saas_s3_bucket")
    if not bucket:
        return None
    return offsite.Store(
        bucket=bucket, endpoint=conf("saas_s3_endpoint", ""), prefix=conf("saas_s3_prefix", ""),
        access_key=conf("saas_s3_access_key", ""), secret_key=conf("saas_s3_secret_key", ""),
        region=conf("saas_s3_region", "us-east-1"),
        storage_class=conf("saas_s3_storage_class", ""))


def config_file():
    """The odoo.conf this server read, if it is a file."""
    return config.rcfile if config.rcfile and os.path.isfile(config.rcfile) else None


class SaasSettings(models.AbstractModel):
    """Typed business settings with one table of defaults (:data:`SETTINGS`)."""

    _name = "saas.settings"
    _description = "SaaS Settings"

    @api.model
    def _get(self, key):
        kind, default = SETTINGS[key]
        value = self.env["ir.config_parameter"].sudo().get_param(key)
        if value in (None, False, ""):
            return default
        if kind is bool:
            return value == "True"
        if kind is int:
            try:
                return int(value)
            except ValueError:
                return default
        return value.strip()

    @api.model
    def _set(self, key, value):
        kind, _default = SETTINGS[key]
        text = str(bool(value)) if kind is bool else str(value if value is not None else "")
        self.env["ir.config_parameter"].sudo().set_param(key, text)
