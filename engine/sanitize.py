"""Make a fresh clone its own database before anyone can log in.

A clone starts as a byte copy of the template: same identity (``database.uuid``,
``database.secret``, which signs sessions and tokens), same URL, and whatever
secrets the template carried.  This module gives the clone a new identity and
removes what must not be shared between customers, in one transaction, with
plain SQL (no Odoo registry is loaded).

What is removed follows Odoo 18's own neutralize scripts, limited to secrets:
unlike ``neutralize_database`` (meant for test copies), crons and mail stay on,
because the clone is a customer's production database.  Statements for tables
or columns a template does not have (its modules decide) are skipped.
"""

import re
import uuid

from . import login as login_tokens

#: Config parameters that look like integration secrets (keys, tokens,
#: passwords): removed, the customer configures their own integrations.
SECRET_PARAM_RE = r"(secret|token|api_key|apikey|access_key|password|private_key|client_key)"
#: Settings whose names look secret but are not: kept.
KEPT_PARAMS = ("auth_signup.reset_password", "auth_password_policy.minlength",
               "password.hashing.rounds")
#: Config parameters that tie a database to a subscription or a device.
IDENTITY_PARAMS = (
    "database.enterprise_code", "database.expiration_date", "database.expiration_reason",
    "database.already_linked_subscription_url", "database.already_linked_email",
    "database.already_linked_send_mail_url", "ocn.uuid", "odoo_ocn.project_id",
)

#: (required "table" or "table.column", statement).  Order matters only for
#: readability: every statement is independent.
STATEMENTS = (
    ("res_users_apikeys", "DELETE FROM res_users_apikeys"),
    ("res_device_log", "DELETE FROM res_device_log"),
    ("auth_totp_device", "DELETE FROM auth_totp_device"),
    ("res_users.totp_secret", "UPDATE res_users SET totp_secret = NULL "
                              "WHERE totp_secret IS NOT NULL"),
    ("ir_mail_server", "UPDATE ir_mail_server SET smtp_user = NULL, smtp_pass = NULL, "
                       "active = false"),
    ("fetchmail_server", "UPDATE fetchmail_server SET password = NULL, active = false, "
                         "state = 'draft'"),
    ("iap_account", "DELETE FROM iap_account"),
    ("mail_mail", "DELETE FROM mail_mail WHERE state IN ('outgoing', 'exception')"),
    ("bus_bus", "DELETE FROM bus_bus"),
    ("bus_presence", "DELETE FROM bus_presence"),
    ("res_users_settings.google_calendar_rtoken",
     "UPDATE res_users_settings SET google_calendar_rtoken = NULL, "
     "google_calendar_token = NULL"),
    ("res_users_settings.microsoft_calendar_rtoken",
     "UPDATE res_users_settings SET microsoft_calendar_rtoken = NULL, "
     "microsoft_calendar_token = NULL"),
    ("payment_provider", "UPDATE payment_provider SET state = 'disabled' "
                         "WHERE code NOT IN ('none', 'custom', 'demo')"),
)


def _existing(cr):
    """Every ``table`` and ``table.column`` of the public schema."""
    cr.execute("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = 'public'")
    names = set()
    for table, column in cr.fetchall():
        names.update((table, "%s.%s" % (table, column)))
    return names


def _set_param(cr, key, value):
    cr.execute("""
        INSERT INTO ir_config_parameter (key, value, create_uid, create_date, write_uid,
                                         write_date)
        VALUES (%s, %s, 1, now() AT TIME ZONE 'UTC', 1, now() AT TIME ZONE 'UTC')
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                        write_date = EXCLUDED.write_date""", (key, value))


def new_identity(cr, url):
    """Fresh uuid/secret/create_date, and the instance URL, frozen."""
    cr.execute("DELETE FROM ir_config_parameter "
               "WHERE (key ~* %s AND NOT key = ANY(%s)) OR key = ANY(%s)",
               (SECRET_PARAM_RE, list(KEPT_PARAMS), list(IDENTITY_PARAMS)))
    _set_param(cr, "database.uuid", str(uuid.uuid1()))
    _set_param(cr, "database.secret", str(uuid.uuid4()))
    cr.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')")
    _set_param(cr, "database.create_date", cr.fetchone()[0])
    _set_param(cr, "web.base.url", url)
    _set_param(cr, "web.base.url.freeze", "True")


def hand_over_admin(cr, template_login, login):
    """Give the template's administrator the customer's login, and no password.

    Done in SQL, before anyone can log in: the template's credentials are dead
    from the first second, and Odoo's "your login changed" security mail (sent
    when the login is changed through the ORM) does not reach the customer.
    Nobody can log in as the administrator until the customer chooses a
    password with the welcome link (provisioning itself uses a one-time API
    key, see ``customize``).  Returns the administrator's user id.
    """
    cr.execute("UPDATE res_users SET login = %s, password = NULL WHERE login = %s RETURNING id",
               (login, template_login))
    if cr.rowcount != 1:
        raise ValueError("the template has no user with login %r" % template_login)
    return cr.fetchone()[0]


def lock_other_users(cr, login):
    """Every user but the customer's administrator loses its password (the administrator
    has none either, see :func:`hand_over_admin`).

    A template built with demo data has users with well-known passwords
    (``demo``/``demo``, ``portal``/``portal``), and users created while the
    operator configured a template have passwords the operator knows: in
    every clone they would open the customer's database.  Their records stay
    (data refers to them); the customer's administrator gives them a password
    when they are wanted.  Returns how many were locked.
    """
    cr.execute("UPDATE res_users SET password = NULL WHERE login <> %s AND password IS NOT NULL",
               (login,))
    return cr.rowcount


def _check_hash(password_hash):
    """Only a hash reaches a client database: never a password in clear."""
    if not password_hash.startswith("$pbkdf2-"):
        raise ValueError("not a pbkdf2 password hash")


def set_password(conn, login, password_hash):
    """Give ``login`` of the client database behind ``conn`` a new password hash; commit."""
    _check_hash(password_hash)
    with conn.cursor() as cr:
        cr.execute("UPDATE res_users SET password = %s WHERE login = %s AND active",
                   (password_hash, login))
        if cr.rowcount != 1:
            raise ValueError("the database has no active user with login %r" % login)
    conn.commit()


def close_public_signup(cr):
    """Sign-up on invitation only (``auth_signup``'s *b2b* scope): a template made with
    free sign-up on would let anyone create a user in a customer's database from its
    login page ("Don't have an account?", ``/web/signup``).  The customer can open it
    again in their Settings."""
    _set_param(cr, "auth_signup.invitation_scope", "b2b")


def sanitize(conn, url, admin=None):
    """Run every applicable statement on the clone behind ``conn``; commit; return them.

    ``url`` is the instance's public URL (``https://host``, ``http://host:8069``).
    ``admin``, when given, is ``(template_login, customer_login)`` for
    :func:`hand_over_admin`.
    """
    if not isinstance(url, str) or not re.fullmatch(r"https?://[a-z0-9.-]+(:[0-9]+)?", url):
        raise ValueError("invalid instance URL %r" % url)
    applied = []
    with conn.cursor() as cr:
        existing = _existing(cr)
        new_identity(cr, url)
        close_public_signup(cr)
        login_tokens.ensure_table(cr)
        # A link issued in the template (Open Template) must not open its clones.
        cr.execute("DELETE FROM saas_login_token")
        if admin:
            hand_over_admin(cr, *admin)
            lock_other_users(cr, admin[1])
        for requirement, statement in STATEMENTS:
            if requirement in existing:
                cr.execute(statement)
                applied.append(statement)
    conn.commit()
    return applied


def company_currency(conn):
    """The currency code of the main company of the database behind ``conn``."""
    with conn.cursor() as cr:
        cr.execute("SELECT cur.name FROM res_company c JOIN res_currency cur "
                   "ON cur.id = c.currency_id ORDER BY c.id LIMIT 1")
        row = cr.fetchone()
    conn.rollback()
    return row[0] if row else None


def claim(conn, url, *, placeholder, login, company, admin):
    """Give a pooled clone its customer, in SQL; commit.

    The pooled clone was sanitized with a placeholder administrator
    (``placeholder``, without password): it becomes ``login``, with the
    customer's name, e-mail and timezone (and language when that language is
    active there), the main company takes the customer's name and e-mail, and
    ``url`` becomes the database's frozen base URL.  Plain column writes on a
    database no Odoo has loaded: no cache to clear, no side effect skipped
    (a company's currency, which has side effects, is never changed here:
    the caller claims only a clone whose currency is already the right one).
    """
    if not isinstance(url, str) or not re.fullmatch(r"https?://[a-z0-9.-]+(:[0-9]+)?", url):
        raise ValueError("invalid instance URL %r" % url)
    with conn.cursor() as cr:
        cr.execute("UPDATE res_users SET login = %s WHERE login = %s AND active "
                   "RETURNING partner_id, company_id", (login, placeholder))
        row = cr.fetchone()
        if not row:
            conn.rollback()
            raise ValueError("the pooled database has no user %r" % placeholder)
        partner_id, company_id = row
        cr.execute("SELECT code FROM res_lang WHERE code = %s AND active",
                   (admin.get("lang") or None,))
        lang = cr.fetchone()
        cr.execute("UPDATE res_partner SET name = %s, email = %s, tz = COALESCE(%s, tz), "
                   "lang = COALESCE(%s, lang) WHERE id = %s",
                   (admin["name"], admin.get("email") or None, admin.get("tz") or None,
                    lang and lang[0], partner_id))
        cr.execute("UPDATE res_partner SET name = %s, email = %s FROM res_company c "
                   "WHERE c.id = %s AND res_partner.id = c.partner_id",
                   (company["name"], company.get("email") or None, company_id))
        cr.execute("UPDATE res_company SET name = %s, email = %s WHERE id = %s",
                   (company["name"], company.get("email") or None, company_id))
        _set_param(cr, "web.base.url", url)
    conn.commit()


def installed_modules(conn):
    """Names of the modules installed in the database behind ``conn`` (as Odoo counts
    them for its neutralization: installed, to upgrade, to remove)."""
    with conn.cursor() as cr:
        cr.execute("SELECT name FROM ir_module_module "
                   "WHERE state IN ('installed', 'to upgrade', 'to remove') ORDER BY name")
        return [name for (name,) in cr.fetchall()]


def neutralize(conn, queries):
    """Run Odoo's neutralization ``queries`` (the installed modules' own
    ``data/neutralize.sql``, read by the caller from the addons path, never from the
    database) in one transaction; commit.  A staging copy then runs no scheduled action,
    sends no mail (a catch-all server at an invalid address), calls no webhook and
    shows Odoo's "neutralized" banner."""
    with conn.cursor() as cr:
        for query in queries:
            cr.execute(query)
    conn.commit()


def admin_login(conn):
    """The login of the database's administrator (``base.user_admin``), for the record of
    a copy whose administrator the manager did not name; None without one."""
    with conn.cursor() as cr:
        cr.execute("""SELECT u.login FROM res_users u
                        JOIN ir_model_data d ON d.model = 'res.users' AND d.res_id = u.id
                       WHERE d.module = 'base' AND d.name = 'user_admin'""")
        row = cr.fetchone()
    return row[0] if row else None
