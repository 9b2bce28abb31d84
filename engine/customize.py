"""Customize a fresh clone over JSON-RPC (odoorpc), as the customer's Odoo sees it.

The clone is reached through the Odoo server that will serve it, with the
instance's ``Host`` header so that ``dbfilter`` admits the database (the
request itself goes to the server's own address: no DNS needed).

Every write goes through the ORM of that server (company, customer
administrator): Odoo's own side effects (the company's partner, a currency
activated with the multi-currency group, caches) happen as they would in the
customer's own hands.  Only *reads* are done in SQL on the clone (ids by
code, the administrator's current values): they have no side effect.

Authentication costs nothing worth measuring: the RPC calls carry a one-time
Odoo API key (see :func:`grant_key`), pbkdf2 with 6,000 rounds (Odoo's own
API-key format) instead of a password's 600,000 (about 0.3 s per
verification, paid again by every worker process and after every cache
clear).  The key belongs to the customer's administrator, expires within
minutes whatever happens, and is deleted as soon as the writes are done.
The administrator has no password meanwhile (see ``sanitize``): the
customer chooses one with the welcome link.
"""

import secrets
import time
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from urllib.parse import urlsplit

import odoorpc

from .errors import RetryableError

ODOO_SERIES = "18.0"


class CustomizeError(Exception):
    """The clone refused the key or a write; the message says which step."""


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
    """A random secret of 24 url-safe characters (a password, or an API key)."""
    return secrets.token_urlsafe(18)


#: Name of the provisioning's one-time API key (visible to the customer only if
#: provisioning died between :func:`grant_key` and :func:`revoke_key`).
KEY_NAME = "saas_manager provisioning"
#: Lifetime of that key: far longer than the few calls it serves.
KEY_MINUTES = 10
#: Odoo's API-key index: the key's first 8 characters (``res.users.apikeys``).
KEY_INDEX_SIZE = 8


@dataclass
class Target:
    """What the writes need, read from the clone (ids, the administrator's values)."""

    uid: int
    company_id: int
    partner_id: int
    name: str
    lang: str
    tz: str
    country_id: int = False
    currency_id: int = False
    lang_id: int = False  # the wanted language's id when it must change
    lang_active: bool = True


def _scalar(cr, query, params):
    cr.execute(query, params)
    row = cr.fetchone()
    return row[0] if row else False


def prepare(conn, login, *, company, admin):
    """Read, in SQL on the clone behind ``conn``, what :func:`customize` writes with.

    Plain reads of stored columns, equivalent to the ORM searches and reads
    they replace (``active_test`` off, exact codes): no side effect to skip.
    The transaction is ended (rolled back) before returning.
    """
    try:
        with conn.cursor() as cr:
            cr.execute("""SELECT u.id, u.company_id, u.partner_id, p.name, p.lang, p.tz
                            FROM res_users u JOIN res_partner p ON p.id = u.partner_id
                           WHERE u.login = %s AND u.active""", (login,))
            row = cr.fetchone()
            if not row:
                raise CustomizeError("The clone has no active user %r." % login)
            target = Target(*row)
            if company.get("country_code"):
                target.country_id = _scalar(cr, "SELECT id FROM res_country WHERE code = %s",
                                            (company["country_code"],))
            if company.get("currency_code"):
                target.currency_id = _scalar(
                    cr, "SELECT id FROM res_currency WHERE name = %s ORDER BY id LIMIT 1",
                    (company["currency_code"],))
            lang = admin.get("lang")
            if lang and lang != target.lang:
                cr.execute("SELECT id, active FROM res_lang WHERE code = %s", (lang,))
                row = cr.fetchone()
                if row:
                    target.lang_id, target.lang_active = row
    finally:
        conn.rollback()
    return target


def grant_key(conn, uid, key, key_hash, minutes=KEY_MINUTES):
    """Give user ``uid`` of the clone a one-time RPC API key; commit; return its id.

    ``key_hash`` is ``key`` hashed with Odoo's ``KEY_CRYPT_CONTEXT`` (the
    caller has Odoo): the clone stores the hash only.  Scope ``rpc`` (JSON-
    and XML-RPC, never an interactive login), expiring after ``minutes``
    whatever happens to the provisioning.
    """
    if not key_hash.startswith("$pbkdf2-sha512$") or len(key) < 2 * KEY_INDEX_SIZE:
        raise ValueError("not an API key and its pbkdf2 hash")
    with conn.cursor() as cr:
        cr.execute("""
            INSERT INTO res_users_apikeys (name, user_id, scope, expiration_date, index, key)
            VALUES (%s, %s, 'rpc', now() AT TIME ZONE 'UTC' + make_interval(mins => %s), %s, %s)
            RETURNING id""", (KEY_NAME, uid, minutes, key[:KEY_INDEX_SIZE], key_hash))
        key_id = cr.fetchone()[0]
    conn.commit()
    return key_id


def revoke_key(conn, key_id):
    """Delete the key :func:`grant_key` made; commit.

    Like Odoo's own removal of API keys (and its garbage collection of
    expired ones), a plain delete: a worker that verified the key keeps that
    verdict cached until its next cache clear, for a key nobody knows any
    more (the manager forgets it) and that expires within minutes anyway.
    """
    if conn.closed:
        return
    conn.rollback()
    with conn.cursor() as cr:
        cr.execute("DELETE FROM res_users_apikeys WHERE id = %s AND name = %s",
                   (key_id, KEY_NAME))
    conn.commit()


class _Rpc:
    """``execute_kw`` calls as user ``uid`` authenticated by an API key (no login call)."""

    def __init__(self, client, database, uid, key):
        self.client, self.database, self.uid, self.key = client, database, uid, key

    def __call__(self, model, method, *args, **kwargs):
        try:
            return self.client.json("/jsonrpc", {
                "service": "object", "method": "execute_kw",
                "args": [self.database, self.uid, self.key, model, method, list(args), kwargs]},
            )["result"]
        except OSError as exc:  # refused, reset, timed out (urllib's URLError is an OSError)
            raise UnreachableError("The Odoo server serving %s did not answer: %s"
                                   % (self.database, exc)) from exc


def customize(client, database, target, key, *, company, admin):
    """Set the company and the customer's administrator, through the ORM, over JSON-RPC.

    ``target`` comes from :func:`prepare`, ``key`` from :func:`grant_key`.
    ``company``: name, email, phone, street, city, zip (country and currency
    are in ``target``).  ``admin``: name, email, lang, tz.  Returns the
    seconds spent per sub-step (the first call also loads the clone's
    registry in the serving Odoo).
    """
    rpc = _Rpc(client, database, target.uid, key)
    timings = {}
    start = time.perf_counter()
    _write_company(rpc, target, company)
    timings["company"] = time.perf_counter() - start
    start = time.perf_counter()
    _write_admin(rpc, target, admin)
    timings["admin"] = time.perf_counter() - start
    return timings


def _write_company(rpc, target, company):
    """One ``res.company.write``: Odoo's write activates the currency itself (with the
    multi-currency group when another currency stays active), as Settings does."""
    values = {name: company[name] for name in ("name", "email", "phone", "street", "city", "zip")
              if company.get(name)}
    if target.country_id:
        values["country_id"] = target.country_id
    if target.currency_id:
        values["currency_id"] = target.currency_id
    try:
        rpc("res.company", "write", [target.company_id], values)
    except (odoorpc.error.RPCError, odoorpc.error.InternalError) as exc:
        raise CustomizeError("Setting the company failed: %s" % exc) from exc


def _write_admin(rpc, target, admin):
    """Name, language and timezone on the user, email on its partner; only what changes.

    Writing ``lang`` or ``tz`` on a user clears the server's caches even when
    unchanged, and an email changed through res.users mails a security
    notice to the old address, so only changed values are written and the
    email goes to the partner.
    """
    values = {name: admin[name] for name in ("name", "tz")
              if admin.get(name) and admin[name] != getattr(target, name)}
    if target.lang_id:  # set by prepare() only when the language exists and changes
        values["lang"] = admin["lang"]
    try:
        if "lang" in values and not target.lang_active:
            rpc("res.lang", "write", [target.lang_id], {"active": True})
        if admin.get("email"):
            rpc("res.partner", "write", [target.partner_id], {"email": admin["email"]})
        if values:
            rpc("res.users", "write", [target.uid], values)
    except (odoorpc.error.RPCError, odoorpc.error.InternalError) as exc:
        raise CustomizeError("Setting the customer's administrator failed: %s" % exc) from exc
