"""Health checks of many instances at once: one HTTP request and one database login each.

The hourly health cron checks every active instance, up to thousands of
them.  Checked one after the other with generous timeouts, a few hanging
instances would make the run last longer than the hour, so every check has
short timeouts and the checks run in a bounded thread pool: instances that
answer are done in well under a minute, and instances that hang cost at most
``ceil(hanging / concurrency)`` times the timeouts.

Each check is:

* an HTTP ``GET`` of the instance's URL, sent with the instance's ``Host``
  header (so a request to the Odoo server's own address reaches the right
  database through ``dbfilter``), without following redirects: Odoo answers
  a host whose database it does not serve with a redirect to
  ``/web/database/selector``, which is a down instance, not a healthy one.
  At most :data:`BODY_LIMIT` bytes of the body are read: a check must not
  download a large page;
* when a database name and PostgreSQL settings are given, a login to that
  database and ``SELECT 1``.

Nothing raises: every failure becomes a :class:`Result` whose ``error`` is
one short line for the operator.  One broken target never stops the others.
Each worker thread keeps its own ``requests.Session`` (sessions are not
thread-safe), so instances served by the same Odoo server reuse kept-alive
connections.  ``urllib3`` is imported for its exceptions only; it is the
transport of ``requests``.
"""

import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import requests
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ReadTimeoutError

BODY_LIMIT = 64 * 1024
BODY_CHUNK = 16 * 1024
STATEMENT_TIMEOUT_MS = 3000
ERROR_LIMIT = 200
USER_AGENT = "saas_manager-health/1"


@dataclass(frozen=True)
class Target:
    """What to check: ``url`` is fetched with ``Host: host``; ``database`` None skips the DB."""

    key: Any
    url: str
    host: str | None = None
    database: str | None = None


@dataclass
class Result:
    """The outcome of one check; ``up`` is what the cron records, ``error`` says why not."""

    key: Any
    up: bool
    http_status: int | None = None
    response_ms: int | None = None
    database_ok: bool | None = None
    error: str | None = None


def one_line(text, limit=ERROR_LIMIT):
    """``text`` on one line with collapsed blanks, cut to ``limit`` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _inner(exc):
    """The exception ``exc`` wraps, if any.

    requests and urllib3 wrap it in ``reason``, in their last argument, or
    raise during its handling (``__context__``); a context is followed only
    when it is a socket error: urllib3 1.26 retries ``getresponse()`` after
    a ``TypeError``, which then is the context of every read error.
    """
    for inner in (getattr(exc, "reason", None), exc.args[-1] if exc.args else None,
                  exc.__cause__):
        if isinstance(inner, BaseException):
            return inner
    return exc.__context__ if isinstance(exc.__context__, OSError) else None


def _root_cause(exc):
    """The innermost exception behind a requests/urllib3 error (they wrap several times)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = _inner(exc)
        if inner is None:
            break
        exc = inner
    return exc


def _connection_error(exc, url):
    """``connection refused: <address>`` or ``connection failed: <reason>``, unwrapped."""
    cause = _root_cause(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error: %s" % one_line(cause)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused: %s" % (urlsplit(url).netloc or url)
    if isinstance(cause, ConnectionResetError):
        return "connection failed: reset by peer"
    text = str(cause)
    # NewConnectionError reads "<urllib3.connection.HTTPConnection object at 0x..>: reason".
    text = re.sub(r"^<[^>]*>:\s*", "", text)
    return "connection failed: %s" % (text or type(cause).__name__)


def _read_some(response, read_timeout):
    """Read at most :data:`BODY_LIMIT` bytes of the body; return an error text or None.

    ``read_timeout`` bounds each read and, roughly, the whole body: a server
    that trickles bytes is cut off after that time too.  A body read to its
    end gives its connection back to the session's pool (keep-alive); any
    other connection is closed with the response.
    """
    deadline = time.perf_counter() + read_timeout
    received = 0
    try:
        while received < BODY_LIMIT:
            chunk = response.raw.read(min(BODY_CHUNK, BODY_LIMIT - received))
            if not chunk:
                return None
            received += len(chunk)
            if time.perf_counter() > deadline:
                return "body not received within %gs" % read_timeout
    except ReadTimeoutError:
        return "timed out after %gs reading the body" % read_timeout
    except (TransportError, OSError) as exc:
        return "body read failed: %s" % one_line(_root_cause(exc))
    return None


def _request_error(exc, target, connect_timeout, read_timeout):
    """The operator's line for a request that got no HTTP status at all."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timed out after %gs connecting" % connect_timeout
    if isinstance(exc, requests.Timeout):
        return "timed out after %gs" % read_timeout
    if isinstance(exc, requests.ConnectionError):
        return _connection_error(exc, target.url)
    return "request failed: %s" % one_line(exc)


def _status_error(status, reason, location):
    """None for a 2xx status, else why it is not one (a redirect says where to)."""
    if 200 <= status < 300:  # noqa: PLR2004 (the success range)
        return None
    if 300 <= status < 400:  # noqa: PLR2004 (the redirect range)
        return "HTTP %d redirected to %s" % (status, location)
    return ("HTTP %d %s" % (status, reason or "")).strip()


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """Applies fixed ``(connect, read)`` timeouts to everything its session sends.

    The timeouts belong to the session rather than to each call, so a
    wrapper of ``Session.send`` that rewrites per-call timeouts (Odoo's test
    harness raises any timeout under 10 s, and cannot handle a tuple) does
    not change them.
    """

    def __init__(self, timeout, **kwargs):
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def new_session(connect_timeout, read_timeout, pool_size=4):
    """A ``requests.Session`` whose every request uses these timeouts."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = TimeoutAdapter((connect_timeout, read_timeout), pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def check_http(session, target, connect_timeout, read_timeout):
    """``(ok, status, response_ms, error)`` of one ``GET`` of ``target.url``.

    ``session`` comes from :func:`new_session` with the same timeouts (they
    are named here for the error texts).  ``response_ms`` runs until the
    response headers arrived (the body is read afterwards, and only its first
    :data:`BODY_LIMIT` bytes).
    """
    headers = {"Host": target.host} if target.host else {}
    start = time.perf_counter()
    try:
        response = session.get(target.url, headers=headers, allow_redirects=False,
                               stream=True)
    except requests.RequestException as exc:
        return False, None, None, _request_error(exc, target, connect_timeout, read_timeout)
    elapsed_ms = round((time.perf_counter() - start) * 1000)
    with response:
        body_error = _read_some(response, read_timeout)
    status = response.status_code
    error = _status_error(status, response.reason, response.headers.get("Location"))
    error = error or body_error
    return error is None, status, elapsed_ms, error


def check_database(pg_params, database, connect_timeout):
    """Log in to ``database`` and run ``SELECT 1``; return an error text or None.

    libpq counts its ``connect_timeout`` in whole seconds (and treats 1 as
    2); the statement timeout keeps a stuck server from holding the worker.
    """
    params = dict(pg_params)
    options = ("%s -c statement_timeout=%d" % (params.pop("options", ""),
                                               STATEMENT_TIMEOUT_MS)).strip()
    params.update(dbname=database, connect_timeout=int(max(1, connect_timeout)),
                  options=options)
    try:
        conn = psycopg2.connect(**params)
        try:
            with conn.cursor() as cr:
                cr.execute("SELECT 1")
                cr.fetchone()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
        return "database: %s" % text.splitlines()[0]
    return None


def check_one(session, target, *, pg_params, connect_timeout, read_timeout):
    """The :class:`Result` of ``target``; never raises."""
    try:
        ok, status, elapsed_ms, error = check_http(session, target, connect_timeout,
                                                   read_timeout)
        database_ok = None
        if pg_params and target.database:
            db_error = check_database(pg_params, target.database, connect_timeout)
            database_ok = db_error is None
            error = "; ".join(e for e in (error, db_error) if e) or None
        return Result(key=target.key, up=ok and database_ok is not False, http_status=status,
                      response_ms=elapsed_ms, database_ok=database_ok,
                      error=one_line(error) if error else None)
    except Exception as exc:  # a broken target must not stop the others
        return Result(key=target.key, up=False,
                      error=one_line("check failed: %s: %s" % (type(exc).__name__, exc)))


def check_all(targets, *, pg_params=None, connect_timeout=3.0, read_timeout=5.0,
              concurrency=32):
    """Check every target, ``concurrency`` at a time; the results are in the targets' order.

    ``pg_params`` are psycopg2 connection keywords (host, port, user,
    password); without them no database is checked.  Wall time is about the
    slowest answer when everything answers, and at most
    ``ceil(hanging / concurrency)`` times the timeouts when targets hang.
    """
    targets = list(targets)
    if not targets:
        return []
    local = threading.local()
    sessions = []
    lock = threading.Lock()

    def session():
        if not hasattr(local, "session"):
            local.session = new_session(connect_timeout, read_timeout)
            with lock:
                sessions.append(local.session)
        return local.session

    def work(target):
        try:
            current = session()
        except Exception as exc:  # pool.map would stop at the first exception
            return Result(key=target.key, up=False, error=one_line("check failed: %s" % exc))
        return check_one(current, target, pg_params=pg_params,
                         connect_timeout=connect_timeout, read_timeout=read_timeout)

    try:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(targets)) or 1,
                                thread_name_prefix="saas-health") as pool:
            return list(pool.map(work, targets))
    finally:
        for each in sessions:
            each.close()


def _nearest_rank(ordered, q):
    """Nearest-rank percentile (``q`` in 0..100) of a sorted, non-empty list."""
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def summarize(results):
    """Counts and response times: total, up, down, answered, database_failed, p50_ms, p95_ms.

    ``answered`` counts the requests that got an HTTP status (2xx or not);
    the percentiles are over their ``response_ms`` (nearest rank, so always
    one of the measured values) and None when nothing answered.
    """
    results = list(results)
    times = sorted(r.response_ms for r in results if r.response_ms is not None)
    up = sum(1 for r in results if r.up)
    return {
        "total": len(results),
        "up": up,
        "down": len(results) - up,
        "answered": len(times),
        "database_failed": sum(1 for r in results if r.database_ok is False),
        "p50_ms": _nearest_rank(times, 50) if times else None,
        "p95_ms": _nearest_rank(times, 95) if times else None,
    }
