"""``/saas/metrics``: the manager's figures for Prometheus, in its text format.

Off (404) until odoo.conf sets ``saas_metrics_token``: the token is a server
secret, never in the database (CONFIGURATION.md, "Metrics (Prometheus)").
Prometheus sends it as ``Authorization: Bearer <token>``; a missing or wrong
one gets a 401, compared in constant time.  Failures are counted per client
address (``saas.rate.limit``) and answered 429 past the limit.  A right
token is always served, so a neighbour's failures behind the same address
cannot blind the monitoring; guessing is stopped by the token's length.

``auth="none"``: there is no Odoo user, the token is the whole access check.
Without a database (no host matched ``dbfilter``), or on a client database
(saas_manager is loaded server-wide, installed on the manager only), the
route answers 404, as the other public routes do.
"""

import hmac

from odoo import http
from odoo.http import request

from ..engine import metrics
from ..models.saas_settings import conf

#: Failed requests per client address and window (seconds) before a 429.
FAILURE_LIMIT, FAILURE_WINDOW = 20, 600


class SaasMetrics(http.Controller):

    # Not readonly (auth="none" routes are by default): a failure writes its rate-limit hit.
    @http.route("/saas/metrics", type="http", auth="none", methods=["GET"], csrf=False,
                readonly=False, sitemap=False)
    def metrics(self, **_kwargs):
        token = conf("saas_metrics_token")
        if not (request.db and "saas.metrics" in request.env and token):
            raise request.not_found()
        if not self._authorized(token):
            return self._refused()
        body = metrics.render(request.env["saas.metrics"]._saas_collect())
        return request.make_response(body, [("Content-Type", metrics.CONTENT_TYPE),
                                            ("Cache-Control", "no-store")])

    @staticmethod
    def _authorized(token):
        scheme, _sep, given = request.httprequest.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), str(token).encode())

    @staticmethod
    def _refused():
        """401 asking for the bearer token, or 429 once the address failed too often."""
        key = "metrics:%s" % request.httprequest.remote_addr
        if not request.env["saas.rate.limit"].sudo()._hit(key, FAILURE_LIMIT, FAILURE_WINDOW):
            return request.make_response("Too many failed requests.\n", [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Retry-After", str(FAILURE_WINDOW))], status=429)
        return request.make_response("A bearer token is needed.\n", [
            ("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
            status=401)
