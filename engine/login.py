"""One-click login into a client database: single-use, short-lived tokens.

The manager issues a token for one user of one client database and writes
only its SHA-256 hash, with the user and an expiry, into a small table of
*that* database (``saas_login_token``, created on first use, unknown to the
ORM).  The browser carries the token to the client's own ``/saas/login`` in
the URL fragment, which no browser sends to a server (so no access log, proxy
log or ``Referer`` holds it); the page posts it back, and the client database
deletes the row in the same statement that reads it.  Hence:

* **bound to one database and one user**: a token presented to another
  database is unknown there;
* **single use**: ``DELETE ... RETURNING`` under the row lock, so of two
  concurrent redemptions exactly one gets the row;
* **short-lived**: :data:`DEFAULT_SECONDS`, checked against the database clock;
* **nothing to steal at rest**: the table holds hashes of 256-bit random
  tokens; the manager keeps no copy of the token.

No signature key is involved: the token is a random capability checked by
lookup, so there is no key to leak and nothing to forge.
"""

import hashlib
import re
import secrets

TABLE_DDL = """
    CREATE TABLE IF NOT EXISTS saas_login_token (
        token_hash char(64) PRIMARY KEY,
        user_id integer NOT NULL,
        expires_at timestamp NOT NULL
    )"""
#: Seconds a login link stays valid when the caller names no other duration.
DEFAULT_SECONDS = 60
MAX_SECONDS = 3600
#: ``secrets.token_urlsafe(32)``: 43 URL-safe characters, 256 bits.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_table(cr):
    """The token table, made if missing (a clone made before one-click login had none)."""
    cr.execute(TABLE_DDL)


def issue(conn, login, seconds=DEFAULT_SECONDS):
    """A new token opening a session as ``login`` (an active user) of the database behind
    ``conn``; commit.  Expired tokens of that database are removed on the way."""
    if not isinstance(seconds, int) or not 0 < seconds <= MAX_SECONDS:
        raise ValueError("a login link lives 1 to %d seconds, not %r" % (MAX_SECONDS, seconds))
    token = secrets.token_urlsafe(32)
    with conn.cursor() as cr:
        cr.execute("SELECT id FROM res_users WHERE login = %s AND active", (login,))
        row = cr.fetchone()
        if not row:
            conn.rollback()
            raise ValueError("the database has no active user with login %r" % login)
        ensure_table(cr)
        cr.execute("DELETE FROM saas_login_token WHERE expires_at < now() AT TIME ZONE 'UTC'")
        cr.execute("INSERT INTO saas_login_token (token_hash, user_id, expires_at) "
                   "VALUES (%s, %s, now() AT TIME ZONE 'UTC' + make_interval(secs => %s))",
                   (_hash(token), row[0], seconds))
    conn.commit()
    return token


def redeem(cr, token):
    """The id of the active user ``token`` opens, spending it; None for a token that is
    malformed, unknown here, used or expired (one answer for all: no oracle)."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        return None
    cr.execute("SELECT to_regclass('saas_login_token') IS NOT NULL")
    if not cr.fetchone()[0]:
        return None
    cr.execute("""DELETE FROM saas_login_token t USING res_users u
                   WHERE t.token_hash = %s AND u.id = t.user_id
               RETURNING t.user_id, t.expires_at > now() AT TIME ZONE 'UTC' AND u.active""",
               (_hash(token),))
    row = cr.fetchone()
    return row[0] if row and row[1] else None
