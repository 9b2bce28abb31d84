"""Single-use, expiring links that let a customer set their own password.

Only a SHA-256 hash of the token is stored; the token itself exists only in
the e-mail that carries it (sent at once, and deleted from the mail queue
whatever the outcome, see ``saas.instance._send_welcome``) and in the
customer's browser, where it travels in the URL *fragment*: browsers never
send a fragment to the server, so the token appears in no access log, proxy
log or ``Referer`` header.  The page posts it back in the form body.
"""

import hashlib
import re
import secrets
from datetime import timedelta

from odoo import api, fields, models

#: ``secrets.token_urlsafe(32)``: 43 URL-safe characters, 256 bits.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def send_and_forget(template, res_id):
    """Send ``template`` for ``res_id`` now and delete its mail, sent or not: the mail
    carries a live token, so no copy may wait in the mail queue.  Returns why it was not
    sent, or False."""
    mail_id = template.send_mail(
        res_id, force_send=True, raise_exception=False,
        email_values={"model": False, "res_id": False, "auto_delete": True})
    mail = template.env["mail.mail"].sudo().browse(mail_id).exists()
    failure = mail and mail.state != "sent" and (mail.failure_reason or mail.state)
    if mail:
        mail.unlink()
    return failure


class SaasAccessLink(models.Model):
    _name = "saas.access.link"
    _description = "SaaS Access Link"
    _order = "id desc"

    instance_id = fields.Many2one("saas.instance", required=True, index=True,
                                  ondelete="cascade", readonly=True)
    purpose = fields.Selection([("welcome", "Set the administrator password")],
                               required=True, readonly=True)
    login = fields.Char(required=True, readonly=True,
                        help="The user of the client database whose password the link sets.")
    token_hash = fields.Char(required=True, readonly=True, index=True, copy=False,
                             groups="base.group_system")
    expires_at = fields.Datetime(required=True, readonly=True)
    used_at = fields.Datetime(readonly=True)

    _sql_constraints = [
        ("token_hash_uniq", "unique(token_hash)", "An access link token must be unique."),
    ]

    @api.model
    def _issue(self, instance, purpose, login):
        """A new link for ``instance``; earlier unused ones of the same purpose die.

        Returns the token, which is not stored anywhere.
        """
        now = self.env.cr.now()  # the database clock, which _redeem compares with
        self.sudo().search([("instance_id", "=", instance.id), ("purpose", "=", purpose),
                            ("used_at", "=", False)]).write({"used_at": now})
        hours = self.env["saas.settings"]._get("saas.welcome_link_hours")
        token = secrets.token_urlsafe(32)
        self.sudo().create({"instance_id": instance.id, "purpose": purpose, "login": login,
                            "token_hash": token_hash(token),
                            "expires_at": now + timedelta(hours=hours)})
        return token

    @api.model
    def _redeem(self, token, purpose):
        """The live link of ``token``, locked and marked used; empty when there is none.

        The row lock makes two concurrent redemptions of one token end with
        one winner.  An expired, used or unknown token gives the same answer.
        """
        if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
            return self.browse()
        self.env.cr.execute(
            "SELECT id FROM saas_access_link WHERE token_hash = %s AND purpose = %s "
            "AND used_at IS NULL AND expires_at > (now() AT TIME ZONE 'UTC') FOR UPDATE",
            (token_hash(token), purpose))
        row = self.env.cr.fetchone()
        if not row:
            return self.browse()
        link = self.sudo().browse(row[0])
        link.used_at = self.env.cr.now()
        return link

    @api.autovacuum
    def _gc_old_links(self):
        """Forget links dead for a month (used or expired)."""
        limit = fields.Datetime.now() - timedelta(days=30)
        self.sudo().search(["|", ("used_at", "<", limit), ("expires_at", "<", limit)]).unlink()
