"""engine.suspension (the page of a suspended host) and engine.dns (custom domains)."""

import os

import pytest

from engine import dns, suspension


def page(**overrides):
    values = {"lang": "en", "company": "SaaS & Co", "host": "acme.example.com",
              "title": "This service is suspended",
              "reason": "An invoice is overdue.", "body": "Pay it to get access back.",
              "portal_url": "https://manager.example.com/my/instances/7",
              "portal_label": "Pay", "contact": "billing@example.com"}
    values.update(overrides)
    return suspension.render(**values)


def test_page_escapes_every_value():
    html = page(company="<script>alert(1)</script>", portal_url='x" onclick="evil()')
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="x&quot; onclick=&quot;evil()"' in html
    assert "An invoice is overdue." in html
    assert "&lt;/script&gt; · acme.example.com" in html


def test_page_needs_every_field():
    with pytest.raises(TypeError, match="missing page fields: contact"):
        suspension.render(**{name: "x" for name in suspension.FIELDS if name != "contact"})


def test_publish_read_withdraw(tmp_path):
    data_dir = str(tmp_path)
    assert suspension.read(data_dir, "acme.example.com") is None
    path = suspension.publish(data_dir, "acme.example.com", page())
    assert path == os.path.join(data_dir, "saas_suspended", "acme.example.com.html")
    assert b"This service is suspended" in suspension.read(data_dir, "acme.example.com")
    assert suspension.read(data_dir, "other.example.com") is None
    suspension.publish(data_dir, "acme.example.com", page(reason="Second reason"))
    assert b"Second reason" in suspension.read(data_dir, "acme.example.com")
    assert os.listdir(os.path.dirname(path)) == ["acme.example.com.html"]  # no temp left
    assert suspension.withdraw(data_dir, "acme.example.com") is True
    assert suspension.withdraw(data_dir, "acme.example.com") is False
    assert suspension.read(data_dir, "acme.example.com") is None


@pytest.mark.parametrize("host", ["../etc/passwd", "acme.example.com/../../x", "", "a b",
                                  "ACME.example.com", "acme.example.com\n", "127.0.0.1"])
def test_hosts_that_are_no_host_never_become_a_path(tmp_path, host):
    (tmp_path / "passwd.html").write_text("secret")
    assert suspension.read(str(tmp_path), host) is None
    with pytest.raises(ValueError):
        suspension.publish(str(tmp_path), host, page())
    with pytest.raises(ValueError):
        suspension.withdraw(str(tmp_path), host)


def test_dns_real_resolver():
    assert dns.points_to("localhost", "localhost") == (True, "localhost is an alias of localhost")
    ok, detail = dns.points_to("nothing-here.invalid", "localhost")
    assert not ok
    assert detail == "nothing-here.invalid does not resolve"


def test_dns_alias_address_or_neither():
    answers = {"acme.saas.example": ("acme.saas.example", {"198.51.100.7"})}
    resolver = lambda name: answers.get(name, (None, set()))  # noqa: E731
    answers["shop.example.com"] = ("acme.saas.example", {"198.51.100.7"})
    assert dns.points_to("shop.example.com", "acme.saas.example", resolver)[0]
    answers["shop.example.com"] = ("shop.example.com", {"198.51.100.7", "192.0.2.1"})
    ok, detail = dns.points_to("shop.example.com", "acme.saas.example", resolver)
    assert ok and "198.51.100.7" in detail
    answers["shop.example.com"] = ("shop.example.com", {"192.0.2.10"})
    ok, detail = dns.points_to("shop.example.com", "acme.saas.example", resolver)
    assert not ok
    assert detail == ("shop.example.com resolves to 192.0.2.10, not to acme.saas.example "
                      "(198.51.100.7)")


def test_dns_refuses_names_that_are_not_domains():
    with pytest.raises(ValueError):
        dns.points_to("shop.example.com; rm -rf /", "acme.localhost")
