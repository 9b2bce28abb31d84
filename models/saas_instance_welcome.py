"""The customer's first access: a welcome mail with a single-use set-password link.

No password of the customer's is ever stored or mailed.  Provisioning gives
the client administrator a random password that lives only in memory (long
enough to customize the clone), then mails a link: the customer chooses their
own password on the manager's ``/saas/welcome`` page, which writes its hash
into the client database.
"""

import psycopg2

from odoo import models
from odoo.exceptions import UserError

from ..engine import sanitize
from .saas_access_link import send_and_forget

WELCOME = "welcome"
#: Odoo's own default minimum (auth_password_policy); no maximum below 128.
MIN_PASSWORD, MAX_PASSWORD = 8, 128


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    def action_send_welcome(self):
        """Mail a new welcome link (the earlier ones stop working)."""
        self.check_access("write")
        self._check_states(("active",), self.env._("Only active instances can get a welcome "
                                                   "link."))
        for instance in self:
            instance._send_welcome()
        return True

    def _send_welcome(self):
        """Send the welcome mail now and keep no copy of it, sent or not.

        The mail carries a live token, so it is sent at once rather than
        queued, and its ``mail.mail`` (with its message) is deleted whatever
        the outcome: a failed mail is not left in the queue with a usable
        link.  The chatter says whether it went out; on failure the operator
        sends a new link once the mail server works.
        """
        self.ensure_one()
        token = self.env["saas.access.link"]._issue(self, WELCOME, self.admin_login)
        url = "%s/saas/welcome#%s" % (self.get_base_url(), token)
        template = self.env.ref("saas_manager.mail_template_instance_ready")
        failure = send_and_forget(template.with_context(saas_welcome_url=url), self.id)
        self._saas_mail_outcome(failure)
        if failure:
            self.message_post(body=self.env._(
                "The welcome mail to %(partner)s could not be sent (%(reason)s); its link was "
                "discarded. Use \"Send Welcome Link\" once mail works.",
                partner=self.partner_id.display_name, reason=failure))
        else:
            self.message_post(body=self.env._(
                "Welcome link e-mailed to %(partner)s, to choose the password of %(login)s.",
                partner=self.partner_id.display_name, login=self.admin_login))

    def _saas_set_admin_password(self, login, password):
        """Write ``password``'s hash for ``login`` in the client database (SQL, no RPC).

        Odoo derives session tokens from the password hash, so any session
        opened with the old password ends too.
        """
        self.ensure_one()
        if not self.env.su:
            self.check_access("write")
        if self.state != "active":
            raise UserError(self.env._("%(name)s is not active.", name=self.name))
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise UserError(self.env._("Choose a password of %(min)s to %(max)s characters.",
                                       min=MIN_PASSWORD, max=MAX_PASSWORD))
        hashed = self.env["res.users"]._crypt_context().hash(password)
        conn = psycopg2.connect(dbname=self._owned_database_name(), **self._saas_pg_params())
        try:
            sanitize.set_password(conn, login, hashed)
        except ValueError as exc:
            raise UserError(self.env._(
                "The administrator %(login)s is no longer an active user of %(name)s: "
                "ask us for help.", login=login, name=self.name)) from exc
        finally:
            conn.close()

    def _saas_redeem_welcome(self, token, password):
        """The instance whose welcome link ``token`` is, after setting the password.

        The link is spent only when the password is set: a refused password
        (too short) or a failure leaves it usable.
        """
        with self.env.cr.savepoint():
            link = self.env["saas.access.link"]._redeem(token, WELCOME)
            if not link:
                raise UserError(self.env._(
                    "This link is not valid: it was already used, has expired or was replaced "
                    "by a newer one. Ask us for a new one."))
            link.instance_id._saas_set_admin_password(link.login, password)
        return link.instance_id
