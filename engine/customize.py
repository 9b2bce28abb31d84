"""Customize a fresh clone over JSON-RPC (odoorpc), as the customer's Odoo sees it.

The clone is reached through the Odoo server that will serve it, with the
instance's ``Host`` header so that ``dbfilter`` admits the database (the
request itself goes to the server's own address: no DNS needed).

Password hashing is the expensive part (pbkdf2-sha512, 600,000 rounds, about
0.3 s each on our reference machine).  Provisioning pays one hash, computed
by the manager *while the database is being cloned* and written with the
customer's login by the sanitize step (so the template's credentials are dead
before anyone can log in), and one verification, the login below.  The
template administrator account thus *becomes* the customer's administrator:
no second admin account is left behind.
"""

import secrets
import time
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlsplit

import odoorpc

from .errors import RetryableError

ODOO_SERIES = "18.0"


class CustomizeError(Exception):
    """The clone refused a login or a write; the message says which step."""


class UnreachableError(CustomizeError, RetryableError):
    """The Odoo server that serves the clone did not answer: retry later."""


class _HostHeader(urllib.request.BaseHandler):
    """Send every request with a fixed ``Host`` header (after urllib set its own)."""

    handler_order = 900

    def __init__(self, host):
        self.host = host

    def http_request(self, request):
        request.add_unredirected_header("Host", self.host)
        return request

    https_request = http_request


def connect(server_url, host, timeout=60):
    """An odoorpc client for the server at ``server_url`` that presents itself as ``host``."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CustomizeError("Invalid Odoo server URL %r." % server_url)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()),
                                         _HostHeader(host))
    return odoorpc.ODOO(
        parts.hostname,
        protocol="jsonrpc+ssl" if parts.scheme == "https" else "jsonrpc",
        port=parts.port or (443 if parts.scheme == "https" else 80),
        timeout=timeout, version=ODOO_SERIES, opener=opener)


def new_password():
    """A random password for the customer's administrator (24 url-safe characters)."""
    return secrets.token_urlsafe(18)


def _id_by_code(client, model, field, code):
    if not code:
        return False
    ids = client.execute_kw(model, "search", [[(field, "=", code)]],
                            {"limit": 1, "context": {"active_test": False}})
    return ids[0] if ids else False


def customize(client, database, login, password, *, company, admin):
    """Log in as the customer's administrator, set the company and the administrator.

    ``login``/``password`` are the ones the sanitize step gave the template's
    administrator.  ``company``: name, email, phone, street, city, zip,
    country_code, currency_code.  ``admin``: name, email, lang, tz.
    Returns the seconds spent per sub-step.
    """
    timings = {}
    start = time.perf_counter()
    try:
        uid = client.login(database, login, password) or client.env.uid
    except OSError as exc:  # refused, reset, timed out (urllib's URLError is an OSError)
        raise UnreachableError("The Odoo server serving %s did not answer: %s"
                               % (database, exc)) from exc
    except (odoorpc.error.RPCError, odoorpc.error.InternalError) as exc:
        raise CustomizeError("Login as the customer's administrator failed: %s" % exc) from exc
    timings["login"] = time.perf_counter() - start
    start = time.perf_counter()
    _write_company(client, uid, company)
    timings["company"] = time.perf_counter() - start
    start = time.perf_counter()
    _write_admin(client, uid, admin)
    timings["admin"] = time.perf_counter() - start
    return timings


def _write_company(client, uid, company):
    company_id = client.execute_kw("res.users", "read", [[uid], ["company_id"]])[0][
        "company_id"][0]
    values = {key: company[key] for key in ("name", "email", "phone", "street", "city", "zip")
              if company.get(key)}
    country = _id_by_code(client, "res.country", "code", company.get("country_code"))
    if country:
        values["country_id"] = country
    currency = _id_by_code(client, "res.currency", "name", company.get("currency_code"))
    if currency:
        client.execute_kw("res.currency", "write", [[currency], {"active": True}])
        values["currency_id"] = currency
    try:
        client.execute_kw("res.company", "write", [[company_id], values])
    except odoorpc.error.RPCError as exc:
        raise CustomizeError("Setting the company failed: %s" % exc) from exc


def _write_admin(client, uid, admin):
    """Name, language and timezone on the user, email on its partner; only what changes.

    Writing ``lang`` costs a quarter second even when unchanged, and an email
    changed through res.users mails a security notice to the old address, so
    the current values are read first and the email goes to the partner.
    """
    current = client.execute_kw("res.users", "read", [[uid], ["name", "tz", "lang",
                                                              "partner_id"]])[0]
    lang = admin.get("lang")
    if lang and lang != current["lang"] and _id_by_code(client, "res.lang", "code", lang):
        lang_ids = client.execute_kw("res.lang", "search", [[("code", "=", lang)]],
                                     {"context": {"active_test": False}})
        client.execute_kw("res.lang", "write", [lang_ids, {"active": True}])
    else:
        lang = None
    values = {key: admin[key] for key in ("name", "tz") if admin.get(key)}
    if lang:
        values["lang"] = lang
    values = {key: value for key, value in values.items() if current.get(key) != value}
    try:
        if admin.get("email"):
            client.execute_kw("res.partner", "write",
                              [[current["partner_id"][0]], {"email": admin["email"]}])
        if values:
            client.execute_kw("res.users", "write", [[uid], values])
    except odoorpc.error.RPCError as exc:
        raise CustomizeError("Setting the customer's administrator failed: %s" % exc) from exc
