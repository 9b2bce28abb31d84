"""The page a host answers while its database is being updated: HTTP 503, with a pass.

A module update (``-u``) or an app install runs in a separate Odoo process
against the live database; meanwhile the customer must not work in a
database that is half-updated, nor see errors.  A suspended database refuses
connections (``engine.suspension``), which the updating process needs, so a
database under maintenance keeps its connections and the *serving* Odoo
refuses the host instead: the manager writes one page per host
(:func:`publish`), the serving Odoo answers every request for that host with
it (``startup.py`` checks :func:`blocks` before it serves a request with a
database), and the page goes when the update is over (:func:`withdraw`).

**The pass.**  The update's own post-update check must reach the updated
database through the serving Odoo, as the customer will (``/web/login``,
then a real login).  It sends a random token in the :data:`PASS_HEADER`
request header; the page file holds only the token's SHA-256 (first line),
compared in constant time.  The token lives in the checking process only
and changes with every publication.

Why a file: as for the suspension pages (whose writing, reading and host
checks it shares), the serving Odoo reads it without a connection to the
manager's database, on any server, behind any proxy; a request for a host
without a page costs one failed ``open()``.
"""

import hashlib
import hmac
import secrets

from . import suspension

PAGES_DIR = "saas_maintenance"
STATUS = 503
#: The request header that carries the pass of the update's own checks.
PASS_HEADER = "X-Saas-Maintenance-Pass"
_PASS_LINE = "<!-- saas-maintenance-pass %s -->\n"

_PAGE = suspension.PAGE_HEAD + """\
<p id="saas_maintenance_body">{body}</p>
</main>
</body>
</html>
"""
#: What a page says, each a text: :func:`render` takes them all, by name.
FIELDS = ("lang", "company", "host", "title", "body")


def render(**values):
    """The page's HTML from :data:`FIELDS`; every value is text and is escaped there."""
    return suspension.render(_PAGE, FIELDS, **values)


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def publish(data_dir, host, page):
    """Put ``host`` under maintenance with ``page``; return the pass (a new token) that
    lets the update's checks through."""
    token = secrets.token_urlsafe(32)
    suspension.publish(data_dir, host, _PASS_LINE % _digest(token) + page, PAGES_DIR)
    return token


def withdraw(data_dir, host):
    """End the maintenance of ``host``; True if it was under maintenance."""
    return suspension.withdraw(data_dir, host, PAGES_DIR)


def blocks(data_dir, host, presented=None):
    """The page (bytes) to answer a request for ``host`` with, or None: no maintenance,
    not a host name, or the request ``presented`` the pass."""
    try:
        with open(suspension.page_path(data_dir, host, PAGES_DIR), "rb") as handle:
            first, page = handle.readline(), handle.read()
    except (ValueError, FileNotFoundError, NotADirectoryError):
        return None
    if presented and isinstance(presented, str):
        expected = (_PASS_LINE % _digest(presented)).encode()
        if hmac.compare_digest(first, expected):
            return None
    return page
