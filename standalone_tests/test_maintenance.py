"""engine.maintenance: the page of a database being updated, and its pass."""

import os

import pytest

from engine import maintenance, suspension


def page(**overrides):
    values = {"lang": "en", "company": "SaaS & Co", "host": "acme.example.com",
              "title": "Updating", "body": "Back in a few minutes."}
    return maintenance.render(**{**values, **overrides})


def test_page_escapes_every_value_and_needs_them_all():
    html = page(body="<img src=x onerror=alert(1)>")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "SaaS &amp; Co · acme.example.com" in html
    with pytest.raises(TypeError, match="missing page fields: title"):
        maintenance.render(lang="en", company="c", host="h", body="b")


def test_a_host_under_maintenance_gets_the_page_unless_it_shows_the_pass(tmp_path):
    data_dir = str(tmp_path)
    assert maintenance.blocks(data_dir, "acme.example.com") is None
    token = maintenance.publish(data_dir, "acme.example.com", page())
    served = maintenance.blocks(data_dir, "acme.example.com")
    assert b"Back in a few minutes." in served
    assert b"saas-maintenance-pass" not in served, "the pass line is not served"
    assert maintenance.blocks(data_dir, "acme.example.com", token) is None
    for wrong in ("", "x", token[:-1], token + "x", token.upper()):
        assert maintenance.blocks(data_dir, "acme.example.com", wrong) == served
    assert maintenance.blocks(data_dir, "other.example.com") is None, "one host only"
    with open(suspension.page_path(data_dir, "acme.example.com", maintenance.PAGES_DIR),
              encoding="utf-8") as handle:
        assert token not in handle.read(), "only the pass's hash is on disk"
    assert not suspension.read(data_dir, "acme.example.com"), "not a suspension page"


def test_each_publication_has_its_own_pass_and_withdraw_ends_it(tmp_path):
    data_dir = str(tmp_path)
    first = maintenance.publish(data_dir, "acme.example.com", page())
    second = maintenance.publish(data_dir, "acme.example.com", page(title="Again"))
    assert first != second
    assert maintenance.blocks(data_dir, "acme.example.com", first) is not None
    assert maintenance.blocks(data_dir, "acme.example.com", second) is None
    assert maintenance.withdraw(data_dir, "acme.example.com")
    assert not maintenance.withdraw(data_dir, "acme.example.com")
    assert maintenance.blocks(data_dir, "acme.example.com") is None
    folder = os.path.join(data_dir, maintenance.PAGES_DIR)
    assert os.listdir(folder) == [], "no temporary file left behind"


@pytest.mark.parametrize("host", ["../etc/passwd", "acme.example.com/../x", "", "ACME.com",
                                  "acme.example.com\x00", None, 5])
def test_hosts_that_are_no_host_never_become_a_path(tmp_path, host):
    assert maintenance.blocks(str(tmp_path), host) is None
    if isinstance(host, str):
        with pytest.raises(ValueError):
            maintenance.publish(str(tmp_path), host, page())


def test_a_page_that_cannot_be_read_is_no_page(tmp_path):
    """Whatever the file system says (a name too long for it, a folder in the way), a
    request is served as if there were no page, never with an error."""
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters: a valid host
    assert maintenance.blocks(str(tmp_path), longest) is None
    assert suspension.read(str(tmp_path), longest) is None
    os.makedirs(os.path.join(str(tmp_path), maintenance.PAGES_DIR, "acme.example.com.html"))
    assert maintenance.blocks(str(tmp_path), "acme.example.com") is None
