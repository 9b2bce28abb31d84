"""The page a host answers while its database is being updated: HTTP 503, with a pass.

A module update (``-u``) or an app install runs in a separate Odoo process
against the live database; meanwhile the customer must not work in a
database that is half-updated, nor see errors.  A suspended database refuses
connections (``engine.suspension``), which the updating process needs, so a
database under maintenance keeps its connections and the *serving* Odoo
refuses to serve it instead: the manager writes one page per database
(:func:`publish`), the serving Odoo answers every request it would serve
with that database with it (``startup.py`` checks :func:`blocks` before it
serves a request with a database), and the page goes when the update is
over (:func:`withdraw`).  Keyed by the database Odoo chose, not by the
request's host: ``dbfilter`` maps several hosts to one database (``www.``
is stripped; with ``^%d$`` only the first label counts), and every one of
them must get the page.  Instance databases are named like hosts, so the
name is checked as one before it becomes a path.

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


def publish(data_dir, database, page):
    """Put ``database`` (an instance's, named like its host) under maintenance with
    ``page``; return the pass (a new token) that lets the update's checks through."""
    token = secrets.token_urlsafe(32)
    suspension.publish(data_dir, database, _PASS_LINE % _digest(token) + page, PAGES_DIR)
    return token


def withdraw(data_dir, database):
    """End the maintenance of ``database``; True if it was under maintenance."""
    return suspension.withdraw(data_dir, database, PAGES_DIR)


def blocks(data_dir, database, presented=None):
    """The page (bytes) to answer a request served by ``database`` with, or None: no
    maintenance, or the request ``presented`` the pass."""
    content = suspension.read(data_dir, database, PAGES_DIR)
    if content is None:
        return None
    first, _newline, page = content.partition(b"\n")
    if presented and isinstance(presented, str):
        expected = (_PASS_LINE % _digest(presented)).encode()
        if hmac.compare_digest(first + b"\n", expected):
            return None
    return page
