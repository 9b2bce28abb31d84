"""Fleet updates: what an update campaign decides, and how an updated database is checked.

An update campaign (``saas.update.campaign``) walks a list of instances: a
*canary* batch first, one at a time or a few at once, then the rest, never
more than ``concurrency`` updates running, and only inside its maintenance
window.  The decisions are plain functions of the lines' states
(:func:`next_batch`, :func:`in_window`) so that they are tested without Odoo.

The post-update check (:func:`check_served`) reaches the updated database the
way its customer will: through the serving Odoo, with the instance's host,
carrying the maintenance pass (``engine.maintenance``).  It asks for
``/web/login``, then signs in the customer's administrator with a one-click
login token (``engine.login``) and opens ``/odoo``: a database whose registry
no longer loads, or whose login is broken, fails here even when ``-u``
itself exited 0.
"""

import math
import re
from dataclasses import dataclass

import requests

from . import maintenance

#: States of a campaign line that are over (the others: pending, running).
ENDED_LINE_STATES = ("done", "skipped", "failed", "cancelled")
#: A module list as operators type it: names separated by commas, spaces or new lines.
_SPLIT_RE = re.compile(r"[\s,]+")
HTTP_OK, HTTP_SEE_OTHER = 200, 303
#: The hidden input of ``/saas/login``'s form (controllers/login.py).
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class CheckFailed(Exception):
    """The updated database does not serve its customer as it should."""


def split_modules(text):
    """The module names of ``text`` (comma, space or line separated), in order, once
    each; not checked here (``engine.modules.check_name`` does)."""
    return list(dict.fromkeys(name for name in _SPLIT_RE.split(text or "") if name))


def in_window(hour, start, end):
    """Is local time ``hour`` (0-24, a float) within the window ``[start, end)``?

    ``start == end`` means always; a window may cross midnight (22 to 4).
    """
    if start == end:
        return True
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


@dataclass(frozen=True)
class Line:
    """What :func:`next_batch` needs to know of a campaign line."""

    id: int
    canary: bool
    state: str


def next_batch(lines, concurrency):
    """``(ids to start now, stop)`` for a campaign whose lines are ``lines`` (in order).

    While a canary line has not ended, only canary lines start; a failed canary
    line stops the campaign (``stop`` is True, nothing starts).  Then pending
    lines start in order so that no more than ``concurrency`` (at least one)
    run at once.
    """
    canaries = [line for line in lines if line.canary]
    if any(line.state == "failed" for line in canaries):
        return [], True
    canary_open = any(line.state not in ENDED_LINE_STATES for line in canaries)
    candidates = canaries if canary_open else lines
    running = sum(line.state == "running" for line in lines)
    free = max(1, concurrency) - running
    pending = [line.id for line in candidates if line.state == "pending"]
    return pending[:max(0, free)], False


def percentile(values, q):
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list of numbers."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def check_served(odoo_url, host, pass_token, login_token, timeout=30):
    """Raise :class:`CheckFailed` unless the database behind ``host`` answers
    ``/web/login`` and lets ``login_token`` (a one-click login of its administrator)
    open ``/odoo``, through the serving Odoo at ``odoo_url`` with the maintenance pass."""
    session = requests.Session()
    session.headers.update({"Host": host, maintenance.PASS_HEADER: pass_token})
    base = odoo_url.rstrip("/")
    try:
        page = session.get(base + "/web/login", timeout=timeout, allow_redirects=False)
        if page.status_code != HTTP_OK or "oe_login_form" not in page.text:
            raise CheckFailed("/web/login answered %s" % page.status_code)
        form = session.get(base + "/saas/login", timeout=timeout, allow_redirects=False)
        csrf = _CSRF_RE.search(form.text)
        if form.status_code != HTTP_OK or not csrf:
            raise CheckFailed("/saas/login answered %s" % form.status_code)
        signed = session.post(base + "/saas/login", timeout=timeout, allow_redirects=False,
                              data={"token": login_token, "csrf_token": csrf.group(1)})
        if signed.status_code != HTTP_SEE_OTHER:
            raise CheckFailed("the administrator's login was refused (%s)"
                              % signed.status_code)
        home = session.get(base + "/odoo", timeout=timeout, allow_redirects=False)
        if home.status_code != HTTP_OK:
            raise CheckFailed("/odoo answered %s to the signed-in administrator"
                              % home.status_code)
    except requests.RequestException as exc:
        raise CheckFailed("the serving Odoo did not answer: %s" % exc) from exc
