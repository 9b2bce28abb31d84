"""One-click login into an instance, for its customer and for the operator.

The token mechanics are in ``engine.login`` (why it is safe is written
there and in CONFIGURATION.md, "One-click login").  This file decides *who*
may have a link: the customer right after their signup (the signup code
calls :meth:`_saas_login_url` as superuser once the e-mail is verified) and
SaaS managers through *Login as Administrator*, which the instance's
chatter records.  The link always opens the customer's administrator.
"""

from odoo import models
from odoo.exceptions import AccessError, UserError


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    def action_login_as_admin(self):
        """Open the instance, logged in as its administrator, in a new tab (managers)."""
        self.ensure_one()
        if not self.env.user.has_group("saas_manager.group_saas_manager"):
            raise AccessError(self.env._("Only SaaS managers may log into a customer's "
                                         "instance."))
        self.check_access("write")
        url = self._saas_login_url()
        self.message_post(body=self.env._(
            "%(user)s logged in as the administrator %(login)s.",
            user=self.env.user.name, login=self.admin_login))
        return {"type": "ir.actions.act_url", "url": url, "target": "new"}

    def _saas_login_url(self):
        """A single-use link that opens a session as the customer's administrator.

        Private (no RPC); the caller decides who may have it.  The token is
        in the fragment: see ``engine.login``.
        """
        self.ensure_one()
        if self.state != "active":
            raise UserError(self.env._("Only an active instance can be logged into."))
        token = self._saas_issue_login(self._owned_database_name(), self.admin_login)
        return "%s/saas/login#%s" % (self.url, token)
