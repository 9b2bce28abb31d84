"""engine.health against real HTTP servers on loopback and the real PostgreSQL.

One local server stands for many instances: its answer depends on the
``Host`` header, as Odoo's does through ``dbfilter``.  Timeouts are short
(read 0.5 s) so that hanging instances cost the suite little; the time
bounds asserted are bounds with wide margins, not benchmarks.
"""

import importlib.util
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine import health

READ_TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.5
SLOW_SECONDS = 5  # well past READ_TIMEOUT; released at teardown
BIG_BODY = 5 * 1024 * 1024
ENDLESS_SECONDS = 20  # a check that reads the whole body would take this long
SELECTOR = "/web/database/selector"


class _Instances(BaseHTTPRequestHandler):
    """Answers as the instance named by the ``Host`` header."""

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        try:
            if host == "up.test":
                self._send(200, b"ok")
            elif host == "slow.test":
                if not self.server.release.wait(SLOW_SECONDS):
                    self._send(200, b"too late")
            elif host == "redir.test":
                self._send(303, b"", Location=SELECTOR)
            elif host == "err.test":
                self._send(500, b"boom")
            elif host == "big.test":
                self._send(200, b"x" * BIG_BODY)
            elif host == "endless.test":
                self._endless()
            else:
                self._send(404, b"no such instance")
        except OSError:  # the check closed the connection early, as it should
            pass

    def _send(self, status, body, **headers):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _endless(self):
        """200 then 64 KiB every 10 ms until the client leaves (no Content-Length)."""
        self.send_response(200)
        self.end_headers()
        deadline = time.monotonic() + ENDLESS_SECONDS
        while time.monotonic() < deadline and not self.server.release.is_set():
            self.wfile.write(b"y" * 65536)
            time.sleep(0.01)

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default (5) drops SYNs: spurious connect timeouts


@pytest.fixture(scope="module")
def server_url():
    """Base URL of the fake instances' server, shut down after the module."""
    server = _Server(("127.0.0.1", 0), _Instances)
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/web/login" % server.server_address[1]
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def dead_url():
    """A URL on a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d/web/login" % port


def check(targets, **kwargs):
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    kwargs.setdefault("read_timeout", READ_TIMEOUT)
    return health.check_all(targets, **kwargs)


def timed_check(targets, **kwargs):
    start = time.perf_counter()
    results = check(targets, **kwargs)
    return results, time.perf_counter() - start


def test_statuses_and_error_texts(server_url, dead_url):
    up, redir, err, slow, dead = check([
        health.Target("up", server_url, "up.test"),
        health.Target("redir", server_url, "redir.test"),
        health.Target("err", server_url, "err.test"),
        health.Target("slow", server_url, "slow.test"),
        health.Target("dead", dead_url, "up.test"),
    ])
    assert (up.key, up.up, up.http_status, up.error, up.database_ok) == (
        "up", True, 200, None, None)
    assert isinstance(up.response_ms, int)
    assert 0 <= up.response_ms < 2000

    assert (redir.up, redir.http_status) == (False, 303)
    assert redir.error == "HTTP 303 redirected to %s" % SELECTOR
    assert isinstance(redir.response_ms, int)

    assert (err.up, err.http_status) == (False, 500)
    assert err.error.startswith("HTTP 500")

    assert (slow.up, slow.http_status, slow.response_ms) == (False, None, None)
    assert slow.error == "timed out after 0.5s"

    assert (dead.up, dead.http_status, dead.response_ms) == (False, None, None)
    assert dead.error == "connection refused: %s" % dead_url.split("/")[2]


def test_unknown_host_and_host_header_are_sent(server_url):
    """Without the instance's Host header the server does not know the instance."""
    bare, wrong = check([health.Target(1, server_url, None),
                         health.Target(2, server_url, "nobody.test")])
    assert (bare.up, bare.http_status) == (False, 404)
    assert (wrong.up, wrong.http_status) == (False, 404)
    assert bare.error == "HTTP 404 Not Found"


def test_results_keep_the_targets_order(server_url, dead_url):
    """Slow targets finish last; the results still come in the targets' order."""
    kinds = ["slow", "up", "err", "dead", "redir", "up", "slow", "err"] * 4
    expected = {"up": 200, "err": 500, "redir": 303, "slow": None, "dead": None}
    targets = [health.Target(("k", i), dead_url if kind == "dead" else server_url,
                             "%s.test" % kind) for i, kind in enumerate(kinds)]
    results = check(targets, concurrency=6)
    assert [r.key for r in results] == [t.key for t in targets]
    assert [r.http_status for r in results] == [expected[kind] for kind in kinds]
    assert [r.up for r in results] == [kind == "up" for kind in kinds]


def test_a_big_body_is_not_downloaded(server_url):
    """A 5 MB page and a never-ending one are checked as quickly as a small one."""
    (big, endless), elapsed = timed_check([health.Target("big", server_url, "big.test"),
                                           health.Target("endless", server_url,
                                                         "endless.test")])
    assert (big.up, big.http_status, big.error) == (True, 200, None)
    assert (endless.up, endless.http_status, endless.error) == (True, 200, None)
    assert elapsed < 3, "the check read the whole body (%.1fs)" % elapsed


def test_broken_targets_do_not_stop_the_others(server_url):
    results = check([health.Target("no scheme", "instance.example.com", "up.test"),
                     health.Target("bad scheme", "gopher://127.0.0.1/", "up.test"),
                     health.Target("up", server_url, "up.test")])
    assert [r.up for r in results] == [False, False, True]
    for broken in results[:2]:
        assert broken.error.startswith("request failed: ")
        assert "\n" not in broken.error and len(broken.error) <= health.ERROR_LIMIT


def test_empty_target_list():
    assert health.check_all([]) == []


def test_database_check(server_url, pg_params, scratch_db):
    existing = scratch_db()
    missing = scratch_db(create=False)
    ok, gone, http_down, unchecked = check([
        health.Target("ok", server_url, "up.test", existing),
        health.Target("gone", server_url, "up.test", missing),
        health.Target("http down", server_url, "err.test", existing),
        health.Target("no db", server_url, "up.test", None),
    ], pg_params=pg_params)
    assert (ok.up, ok.database_ok, ok.error) == (True, True, None)

    assert (gone.up, gone.http_status, gone.database_ok) == (False, 200, False)
    assert gone.error.startswith("database: ")
    assert 'database "%s" does not exist' % missing in gone.error
    assert "\n" not in gone.error and len(gone.error) <= health.ERROR_LIMIT

    assert (http_down.up, http_down.database_ok) == (False, True)
    assert http_down.error.startswith("HTTP 500")

    assert (unchecked.up, unchecked.database_ok) == (True, None)


def test_database_is_not_checked_without_pg_params(server_url, scratch_db):
    result, = check([health.Target("x", server_url, "up.test", scratch_db(create=False))])
    assert (result.up, result.database_ok, result.error) == (True, None, None)


def test_http_and_database_errors_are_both_reported(dead_url, pg_params, scratch_db):
    result, = check([health.Target("x", dead_url, None, scratch_db(create=False))],
                    pg_params=pg_params)
    assert (result.up, result.database_ok) == (False, False)
    assert result.error.startswith("connection refused: ")
    assert "; database: " in result.error


def test_hanging_targets_cost_one_timeout_per_round(server_url):
    """8 hanging targets, 8 at a time: one read timeout in all, not eight."""
    targets = [health.Target(i, server_url, "slow.test") for i in range(8)]
    results, elapsed = timed_check(targets, concurrency=8)
    assert [r.error for r in results] == ["timed out after 0.5s"] * 8
    assert elapsed < 3, "hanging targets were not checked concurrently (%.1fs)" % elapsed


def test_session_timeouts_win_over_per_call_timeouts(server_url):
    """A wrapper that rewrites per-call timeouts (as Odoo's test harness does) cannot
    lengthen a check: the session's adapter applies its own."""
    session = health.new_session(CONNECT_TIMEOUT, READ_TIMEOUT)
    start = time.perf_counter()
    with pytest.raises(health.requests.Timeout):
        session.get(server_url, headers={"Host": "slow.test"}, timeout=30)
    assert time.perf_counter() - start < SLOW_SECONDS / 2
    session.close()


def test_concurrency_bounds_the_rounds(server_url):
    """16 hanging targets, 4 at a time: ceil(16 / 4) = 4 rounds of one timeout each."""
    targets = [health.Target(i, server_url, "slow.test") for i in range(16)]
    results, elapsed = timed_check(targets, concurrency=4)
    assert all(r.error == "timed out after 0.5s" for r in results)
    rounds = math.ceil(len(targets) / 4)
    assert elapsed >= rounds * READ_TIMEOUT * 0.9, "more than 4 checks ran at once"
    assert elapsed < rounds * READ_TIMEOUT + 3


def test_many_answering_targets_are_quick(server_url):
    targets = [health.Target(i, server_url, "up.test") for i in range(300)]
    results, elapsed = timed_check(targets, concurrency=32)
    assert all(r.up for r in results)
    assert elapsed < 10


def _result(ms, up=True, database_ok=None):
    return health.Result(key=ms, up=up, http_status=200 if ms is not None else None,
                         response_ms=ms, database_ok=database_ok)


def test_summarize_counts_and_percentiles():
    results = [_result(ms) for ms in range(20, 0, -1)]  # 20..1 ms, unsorted
    # 21 answered: 1..20 and a second 7; nearest rank: p50 the 11th, p95 the 20th
    results += [_result(None, up=False), _result(None, up=False),
                _result(7, up=False, database_ok=False)]
    summary = health.summarize(results)
    assert summary == {"total": 23, "up": 20, "down": 3, "answered": 21,
                       "database_failed": 1, "p50_ms": 10, "p95_ms": 19}


def test_summarize_small_samples():
    assert health.summarize([]) == {"total": 0, "up": 0, "down": 0, "answered": 0,
                                    "database_failed": 0, "p50_ms": None, "p95_ms": None}
    one = health.summarize([_result(42), _result(None, up=False)])
    assert (one["p50_ms"], one["p95_ms"], one["answered"], one["down"]) == (42, 42, 1, 1)
    two = health.summarize([_result(30), _result(10)])
    assert (two["p50_ms"], two["p95_ms"]) == (10, 30)


def test_summarize_real_results(server_url, dead_url):
    results = check([health.Target(1, server_url, "up.test"),
                     health.Target(2, server_url, "err.test"),
                     health.Target(3, dead_url, None)])
    summary = health.summarize(results)
    assert (summary["up"], summary["down"], summary["answered"]) == (1, 2, 2)
    assert summary["p50_ms"] <= summary["p95_ms"]


def test_one_line():
    assert health.one_line("a\n  b\tc ") == "a b c"
    cut = health.one_line("x" * 500)
    assert len(cut) == health.ERROR_LIMIT and cut.endswith("...")


@pytest.fixture
def endpoints():
    """bench/health_endpoints.py, imported from its file (bench/ is not a package)."""
    path = health.__file__.rsplit("/engine/", 1)[0] + "/bench/health_endpoints.py"
    spec = importlib.util.spec_from_file_location("health_endpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server, thread, port = module.start(slow_seconds=SLOW_SECONDS)
    yield "http://127.0.0.1:%d/" % port
    module.stop(server)
    thread.join(5)
    assert not thread.is_alive()


def test_bench_endpoints_behave_by_host_prefix(endpoints):
    up, slow, dead, err, other = check([health.Target(1, endpoints, "up-acme.example.com"),
                                        health.Target(2, endpoints, "slow-1"),
                                        health.Target(3, endpoints, "dead-1"),
                                        health.Target(4, endpoints, "err-1"),
                                        health.Target(5, endpoints, "nobody")])
    assert (up.up, up.http_status) == (True, 200)
    assert slow.error == "timed out after 0.5s"
    assert (dead.http_status, dead.error) == (None, "connection failed: reset by peer")
    assert (err.up, err.http_status) == (False, 500)
    assert other.http_status == 404


def test_bench_endpoints_take_many_concurrent_clients(endpoints):
    kinds = ["up", "err", "dead"] * 100
    results = check([health.Target(i, endpoints, "%s-%d" % (kind, i))
                     for i, kind in enumerate(kinds)], concurrency=64)
    assert [r.http_status for r in results] == [
        {"up": 200, "err": 500, "dead": None}[kind] for kind in kinds]
