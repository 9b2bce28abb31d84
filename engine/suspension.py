"""The page a suspended instance's host answers with: HTTP 503 and a clear word.

A suspended database refuses connections, so Odoo no longer lists it, and a
request for its host would land on Odoo's database selector ("The database
manager has been disabled by the administrator"): no word of why, nor of how
to pay.  So the manager writes one small HTML page per suspended host into
the data directory of the server that serves it (:func:`publish`) and takes
it away when access comes back or the instance is gone (:func:`withdraw`);
the serving Odoo answers a request whose host has no database with that
page, if there is one (:func:`read`; ``startup.py`` hooks it in).

Why a file, served by Odoo:

* the serving Odoo reads it without a connection to the manager's database,
  so a busy manager does not slow it, and a request costs one ``open()``
  only when it found no database;
* it works the same behind nginx, another proxy, or none (``./dev run``);
  nginx's generated configuration needs nothing of its own;
* 503 (Service Unavailable) says "not here for now" to browsers, monitors
  and search engines, which keep the address; nothing is cached.

Hosts are validated with :func:`naming.check_domain` before they become a
path, on both sides: a request's ``Host`` header is untrusted.
"""

import html
import os
import tempfile

from .naming import NamingError, check_domain

PAGES_DIR = "saas_suspended"
STATUS = 503

#: The start of every page a host answers for its database (``engine.maintenance``'s too),
#: up to its title: a ``str.format`` template.
PAGE_HEAD = """\
<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="robots" content="noindex"/>
<title>{title}</title>
<style>
body {{ margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       background: #f4f5f7; color: #1f2937; }}
main {{ max-width: 34rem; margin: 12vh auto; background: #fff; border-radius: .75rem;
       padding: 2.5rem; box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
.company {{ color: #6b7280; font-size: .95rem; margin: 0 0 1.5rem; }}
h1 {{ font-size: 1.5rem; margin: 0 0 1rem; }}
.reason {{ background: #fff7ed; border-left: 4px solid #f59e0b; padding: .75rem 1rem;
          margin: 0 0 1.5rem; }}
a.button {{ display: inline-block; background: #714b67; color: #fff; text-decoration: none;
           padding: .6rem 1.2rem; border-radius: .4rem; }}
.contact {{ margin-top: 1.5rem; font-size: .9rem; color: #6b7280; }}
</style>
</head>
<body>
<main>
<p class="company">{company} · {host}</p>
<h1>{title}</h1>
"""
_PAGE = PAGE_HEAD + """\
<p class="reason" id="saas_suspension_reason">{reason}</p>
<p>{body}</p>
<p><a class="button" href="{portal_url}">{portal_label}</a></p>
<p class="contact">{contact}</p>
</main>
</body>
</html>
"""


def page_path(data_dir, host, folder=PAGES_DIR):
    """Where the page of ``host`` lives; ``ValueError`` for a name that is not a host.
    (``folder``: another kind of page, e.g. ``engine.maintenance``'s.)"""
    try:
        check_domain(host)
    except NamingError as exc:
        raise ValueError("not a host name: %r" % (host,)) from exc
    return os.path.join(data_dir, folder, host + ".html")


#: What a page says, each a text: :func:`render` takes them all, by name.
FIELDS = ("lang", "company", "host", "title", "reason", "body", "portal_url", "portal_label",
          "contact")


def render(template=_PAGE, fields=FIELDS, **values):
    """The page's HTML from ``fields``; every value is text and is escaped here."""
    missing = set(fields) - set(values)
    if missing:
        raise TypeError("missing page fields: %s" % ", ".join(sorted(missing)))
    return template.format(**{key: html.escape(values[key] or "", quote=True)
                              for key in fields})


def publish(data_dir, host, page, folder=PAGES_DIR):
    """Write the page of ``host`` atomically (a reader sees the old page or the new)."""
    path = page_path(data_dir, host, folder)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".page-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def withdraw(data_dir, host, folder=PAGES_DIR):
    """Remove the page of ``host``; True if there was one."""
    try:
        os.unlink(page_path(data_dir, host, folder))
    except FileNotFoundError:
        return False
    return True


def read(data_dir, host, folder=PAGES_DIR):
    """The page of ``host`` as bytes, or None: no page, not a host name, or a page that
    cannot be read (a request must never fail because of it)."""
    try:
        with open(page_path(data_dir, host, folder), "rb") as page:
            return page.read()
    except (ValueError, OSError):  # OSError: missing, name too long, permissions...
        return None
