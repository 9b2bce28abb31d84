"""The customer's instances in the manager's portal (``/my``, ``/my/instances``).

Access is Odoo's: the portal record rules show a customer the instances of
their own commercial partner only.
"""

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.http import request, route


class SaasCustomerPortal(CustomerPortal):

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "instance_count" in counters:
            Instance = request.env["saas.instance"]
            values["instance_count"] = Instance.search_count(self._saas_instance_domain()) \
                if Instance.has_access("read") else 0
        return values

    @staticmethod
    def _saas_instance_domain():
        return [("state", "not in", ("draft", "terminated"))]

    @route(["/my/instances"], type="http", auth="user", website=True)
    def portal_my_instances(self, **_kwargs):
        values = self._prepare_portal_layout_values()
        values.update({
            "instances": request.env["saas.instance"].search(self._saas_instance_domain()),
            "page_name": "saas_instances",
        })
        return request.render("saas_manager.portal_my_instances", values)
