from odoo import models


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    def session_info(self):
        """Users of the SaaS groups land on the SaaS dashboard after login, unless they
        chose a home action of their own (Preferences)."""
        info = super().session_info()
        user = self.env.user
        if not info.get("home_action_id") and user.has_group("saas_manager.group_saas_user"):
            info["home_action_id"] = self.env.ref("saas_manager.action_saas_dashboard").id
        return info
