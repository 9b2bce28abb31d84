"""The page a suspended instance's host shows (see ``engine.suspension``).

Written when the instance is suspended (and again when the reason changes),
removed when it is reactivated or terminated.  It says who runs the service,
that it is suspended, the reason's category and where to act: the
instance's page in the manager's portal, where an invoice is paid, a
subscription renewed or a plan changed.  Only what the customer may see is
on it: no amount, no invoice number, no user or database name.
"""

import logging

from odoo import models

from ..engine import suspension

_logger = logging.getLogger(__name__)


class SaasInstance(models.Model):
    _inherit = "saas.instance"

    def _saas_suspension_texts(self):
        """(reason, what to do) for the page, in the customer's language."""
        env = self.with_context(lang=self.partner_id.lang or self.env.lang).env
        renew = env._("Renew it in your customer portal to get your database back.")
        larger = env._("Move to a larger plan in your customer portal, or contact us.")
        texts = {
            "unpaid": (env._("An invoice is overdue."), env._(
                "Pay it in your customer portal: access comes back within seconds of the "
                "payment.")),
            "expired": (env._("The subscription has ended."), renew),
            "cancelled": (env._("The subscription was cancelled."), renew),
            "user_limit": (env._("The plan's user limit is exceeded."), larger),
            "storage_limit": (env._("The plan's storage limit is exceeded."), larger),
        }
        return texts.get(self.suspension_reason, (
            env._("Access was suspended by your provider."),
            env._("Contact us to know more, or see your customer portal.")))

    def _saas_suspension_page(self):
        """The HTML of this instance's page."""
        self.ensure_one()
        env = self.with_context(lang=self.partner_id.lang or self.env.lang).env
        company = self.company_id
        reason, body = self._saas_suspension_texts()
        contact = " · ".join(filter(None, [company.email, company.phone]))
        return suspension.render(
            lang=(env.lang or "en_US").replace("_", "-"), company=company.name, host=self.host,
            title=env._("This service is suspended"), reason=reason, body=body,
            portal_url="%s/my/instances/%d" % (self.get_base_url(), self.id),
            portal_label=env._("Go to your customer portal"),
            contact=contact and env._("Contact: %(contact)s", contact=contact))

    def _saas_publish_suspension_page(self):
        """Put the page up for the instance's host.

        The proxy forwards a custom domain with the instance's host, so one
        page serves both.  A page that cannot be written is logged, not raised: the database is
        blocked either way, and blocking it is what the suspension is for.
        """
        try:
            suspension.publish(self._saas_server().data_dir, self.host,
                               self._saas_suspension_page())
        except (OSError, ValueError) as exc:
            _logger.warning("Suspension page of %s not written: %s", self.host, exc)

    def _saas_withdraw_suspension_page(self):
        try:
            suspension.withdraw(self._saas_server().data_dir, self.host)
        except (OSError, ValueError) as exc:
            _logger.warning("Suspension page of %s not removed: %s", self.host, exc)
