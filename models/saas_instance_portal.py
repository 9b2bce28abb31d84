"""What a customer does to their instance from the portal (``controllers/portal.py``).

The controller has checked that the portal user may read the instance (the
portal record rule: their commercial partner's); these methods run as
superuser and re-check the instance's state themselves, so a stale page
cannot act on an instance that changed meanwhile.
"""

import os

from odoo import fields, models
from odoo.exceptions import UserError, ValidationError

from ..engine import dns, proxy


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    # -- usage, as the portal shows it ----------------------------------------------
    def _portal_usage(self):
        """Bars: [(label, used, allowed, percent)], the figures as text (no limit: no bar)."""
        self.ensure_one()
        unlimited = self.env._("unlimited")
        storage_allowed_mb = self.storage_limit_gb * 1024
        return [
            (self.env._("Users"), str(self.user_count), str(self.user_limit or unlimited),
             _percent(self.user_count, self.user_limit)),
            (self.env._("Storage"), "%d MB" % round(self.storage_mb),
             "%d GB" % self.storage_limit_gb if self.storage_limit_gb else unlimited,
             _percent(self.storage_mb, storage_allowed_mb)),
        ]

    def _portal_backups(self):
        """The instance's verified backups, newest first (the customer downloads them)."""
        return self.env["saas.backup"].sudo().search(
            [("instance_id", "=", self.id)], order="stamp desc, id desc", limit=20)

    # -- back up now -------------------------------------------------------------------
    def _portal_backup_now(self):
        """Queue a backup asked for by the customer, within the daily allowance."""
        self.ensure_one()
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("This instance has no database to back up."))
        allowed = self.env["saas.settings"]._get("saas.portal_backups_per_day")
        since = fields.Datetime.subtract(fields.Datetime.now(), days=1)
        asked = len(self.env["saas.operation"].sudo().search([
            ("instance_id", "=", self.id), ("kind", "=", "backup"),
            ("create_date", ">=", since)]).filtered(lambda op: (op.params or {}).get("portal")))
        if asked >= allowed:
            raise UserError(self.env._(
                "You already asked for %(count)d backups in the last 24 hours: the next one "
                "can be asked for tomorrow.", count=asked))
        return self.env["saas.operation"].sudo()._queue(
            self, "backup", {"kind": "manual", "portal": True})

    # -- custom domain -----------------------------------------------------------------
    def _portal_set_domain(self, domain):
        """Set (or clear, with an empty ``domain``) the customer's own domain; the proxy
        follows in an operation."""
        self.ensure_one()
        if self.state not in ("active", "suspended"):
            raise UserError(self.env._("Only a running instance can have a custom domain."))
        domain = (domain or "").strip() or False
        if domain == self.custom_domain:
            return False
        old = self.custom_domain
        try:
            self.sudo().custom_domain = domain
            self.sudo().flush_recordset(["custom_domain"])  # the unique index, now
        except ValidationError as exc:
            raise UserError(exc.args[0]) from exc
        self.message_post(body=self.env._(
            "Custom domain set by the customer: %(domain)s.",
            domain=domain or self.env._("none")))
        return self.env["saas.operation"].sudo()._queue(self, "domain", {"old": old or ""})

    def _portal_check_domain(self):
        """``(ok, detail)``: does the custom domain point at this instance yet?"""
        self.ensure_one()
        if not self.custom_domain:
            raise UserError(self.env._("This instance has no custom domain."))
        return dns.points_to(self.custom_domain, self.host)

    def _saas_op_domain(self, run):
        """Write the proxy files for the current custom domain (and drop the old one's)."""
        settings = self._saas_proxy_settings()
        if not settings["folder"]:
            return
        with run.step("proxy"):
            path = os.path.join(settings["folder"], proxy.INSTANCE_FILE % self.subdomain)
            if not self.custom_domain:
                proxy.restore(path, None, settings["reload"])
                return
            for name, text in self._saas_proxy_texts(settings).items():
                proxy.apply(os.path.join(settings["folder"], name), text,
                            settings["validate"], settings["reload"])


def _percent(used, allowed):
    return min(100, round(100.0 * used / allowed)) if allowed else 0
