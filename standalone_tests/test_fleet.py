"""engine.fleet: a campaign's decisions (canary, concurrency, window) and the post-update
check, against a real HTTP server standing for the serving Odoo."""

import http.server
import threading

import pytest

from engine import fleet, maintenance

L = fleet.Line


def test_module_lists_as_operators_type_them():
    assert fleet.split_modules("sale, crm\nproject  sale,,") == ["sale", "crm", "project"]
    assert fleet.split_modules("") == fleet.split_modules(None) == []


@pytest.mark.parametrize(("hour", "start", "end", "inside"), [
    (3.0, 0, 0, True),            # same hours: any time
    (22.5, 22, 4, True), (3.99, 22, 4, True), (4.0, 22, 4, False), (12, 22, 4, False),
    (9.0, 9, 17, True), (17.0, 9, 17, False), (8.99, 9, 17, False),
])
def test_the_maintenance_window_may_cross_midnight(hour, start, end, inside):
    assert fleet.in_window(hour, start, end) is inside


def test_canaries_run_alone_first_then_the_rest_within_the_concurrency():
    lines = [L(1, True, "pending"), L(2, True, "pending"), L(3, False, "pending"),
             L(4, False, "pending"), L(5, False, "pending")]
    assert fleet.next_batch(lines, 3) == ([1, 2], False)
    lines[0] = L(1, True, "running")
    assert fleet.next_batch(lines, 1) == ([], False), "the concurrency counts running lines"
    lines[0], lines[1] = L(1, True, "done"), L(2, True, "running")
    assert fleet.next_batch(lines, 3) == ([], False), "no other line before the canaries end"
    lines[1] = L(2, True, "skipped")
    assert fleet.next_batch(lines, 2) == ([3, 4], False)
    lines[2] = L(3, False, "failed")
    assert fleet.next_batch(lines, 2) == ([4, 5], False), "only a canary stops the campaign"


def test_a_failed_canary_stops_the_campaign():
    lines = [L(1, True, "failed"), L(2, True, "running"), L(3, False, "pending")]
    assert fleet.next_batch(lines, 5) == ([], True)


def test_without_canary_and_with_a_bad_concurrency_one_runs():
    lines = [L(1, False, "pending"), L(2, False, "pending")]
    assert fleet.next_batch(lines, 0) == ([1], False)
    assert fleet.next_batch([], 2) == ([], False)


class FakeOdoo(http.server.BaseHTTPRequestHandler):
    """Answers as a client database behind the serving Odoo does, when the request
    carries the pass; ``broken`` makes one path answer 500."""

    broken = None
    token = "pass-token"
    seen = []

    def log_message(self, *_args):
        pass

    def answer(self, status, body="", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body.encode())

    def do_GET(self):
        self.seen.append((self.command, self.path, self.headers.get("Host")))
        if self.headers.get(maintenance.PASS_HEADER) != self.token:
            return self.answer(503, "maintenance")
        if self.path == self.broken:
            return self.answer(500, "Internal Server Error")
        pages = {"/web/login": '<form class="oe_login_form">',
                 "/saas/login": '<input type="hidden" name="csrf_token" value="abc">',
                 "/odoo": "<html>web client</html>"}
        return self.answer(200, pages.get(self.path, ""))

    def do_POST(self):
        self.seen.append((self.command, self.path, self.headers.get("Host")))
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        if "token=login-token" in body and "csrf_token=abc" in body:
            return self.answer(303, headers=[("Location", "/odoo")])
        return self.answer(403, "refused")


@pytest.fixture
def odoo_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOdoo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOdoo.broken, FakeOdoo.seen = None, []
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_check_logs_the_administrator_in_with_the_host_and_the_pass(odoo_url):
    fleet.check_served(odoo_url, "acme.saas.test", "pass-token", "login-token")
    assert [seen[:2] for seen in FakeOdoo.seen] == [
        ("GET", "/web/login"), ("GET", "/saas/login"), ("POST", "/saas/login"),
        ("GET", "/odoo")]
    assert {seen[2] for seen in FakeOdoo.seen} == {"acme.saas.test"}


@pytest.mark.parametrize(("broken", "token", "login", "message"), [
    (None, "wrong-pass", "login-token", "/web/login answered 503"),
    ("/odoo", "pass-token", "login-token", "/odoo answered 500"),
    (None, "pass-token", "spent-token", "login was refused"),
    ("/saas/login", "pass-token", "login-token", "/saas/login answered 500"),
])
def test_each_failure_of_the_check_says_what_failed(odoo_url, broken, token, login, message):
    FakeOdoo.broken = broken
    with pytest.raises(fleet.CheckFailed, match=message):
        fleet.check_served(odoo_url, "acme.saas.test", token, login)


def test_a_serving_odoo_that_does_not_answer_fails_the_check():
    with pytest.raises(fleet.CheckFailed, match="did not answer"):
        fleet.check_served("http://127.0.0.1:9", "acme.saas.test", "t", "l", timeout=2)


def test_percentiles_are_nearest_rank():
    values = list(range(1, 21))  # 1..20
    assert fleet.percentile(values, 95) == 19
    assert fleet.percentile(values, 50) == 10
    assert fleet.percentile([7.5], 95) == 7.5
    assert fleet.percentile([3, 1, 2], 100) == 3
