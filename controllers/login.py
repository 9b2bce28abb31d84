"""``/saas/login``, served by every client database: redeem a one-click login link.

saas_manager is loaded server-wide (not installed in client databases), so
this page cannot use the manager's QWeb templates: it is a small HTML page
of its own.  GET reads the token from the URL fragment (never sent to a
server) and posts it, with Odoo's CSRF token, to the same URL; POST spends
the token (``engine.login.redeem``) and opens the session.
"""

import html

from odoo import http
from odoo.http import request

from ..engine import login as login_tokens

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>%(title)s</title>
<style>body{font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;
color:#374151}main{max-width:28rem;text-align:center}</style></head>
<body><main>%(body)s</main></body></html>"""
FORM = """<p>Signing you in&hellip;</p>
<form method="post" action="/saas/login"><input type="hidden" name="csrf_token" value="%s">
<input type="hidden" name="token"><noscript><button type="submit">Sign in</button></noscript>
</form>
<script>var f = document.forms[0]; f.token.value = location.hash.slice(1);
history.replaceState(null, "", location.pathname); if (f.token.value) f.submit();</script>"""
REFUSED = """<h1>This login link does not work</h1>
<p>It was already used, has expired, or is for another database. Sign in with your
password, or ask for a new link.</p><p><a href="/web/login">Sign in</a></p>"""
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
           ("Referrer-Policy", "no-referrer")]


class SaasLogin(http.Controller):

    @http.route("/saas/login", type="http", auth="public", methods=["GET"], sitemap=False)
    def login_page(self, **_kwargs):
        body = FORM % html.escape(request.csrf_token())
        return request.make_response(PAGE % {"title": "Signing in", "body": body}, HEADERS)

    @http.route("/saas/login", type="http", auth="public", methods=["POST"], sitemap=False)
    def login(self, token="", **_kwargs):
        uid = login_tokens.redeem(request.env.cr, token)
        if not uid:
            return request.make_response(PAGE % {"title": "Link refused", "body": REFUSED},
                                         HEADERS, status=403)
        user = request.env["res.users"].sudo().browse(uid)
        request.session.logout(keep_db=True)
        request.session.pre_login, request.session.pre_uid = user.login, uid
        request.session.finalize(request.env)
        request.env = request.env(user=uid)
        return request.redirect("/odoo", code=303)
