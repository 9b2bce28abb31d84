"""``/saas/welcome``: the customer chooses the password of their new Odoo.

The token travels in the URL fragment (never sent to a server, so never
logged) and is posted back in the form body by the page.  POSTs are
CSRF-checked by Odoo; both methods are rate-limited per client address.
"""

from urllib.parse import urlencode

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

#: Requests per client address and window, for the GET and POST of the page.
RATE_LIMIT, RATE_WINDOW = 20, 600


class SaasWelcome(http.Controller):

    @http.route("/saas/welcome", type="http", auth="public", methods=["GET", "POST"],
                sitemap=False)
    def welcome(self, token="", password="", confirm="", **_kwargs):
        if "saas.rate.limit" not in request.env:
            # A client database (saas_manager is loaded server-wide, not installed there).
            return request.not_found()
        limiter = request.env["saas.rate.limit"].sudo()
        if not limiter._hit("welcome:%s" % request.httprequest.remote_addr, RATE_LIMIT,
                            RATE_WINDOW):
            return self._page(request.env._("Too many attempts: try again in a few minutes."),
                              status=429)
        if request.httprequest.method != "POST":
            return self._page()
        if password != confirm:
            return self._page(request.env._("The two passwords differ."))
        try:
            instance = request.env["saas.instance"].sudo()._saas_redeem_welcome(token, password)
        except UserError as exc:
            return self._page(str(exc))
        login_url = "%s/web/login?%s" % (instance.url, urlencode({"login": instance.admin_login}))
        return request.redirect(login_url, code=303, local=False)

    @staticmethod
    def _page(error=None, status=200):
        return request.render("saas_manager.welcome_page", {"error": error}, status=status)
