"""Subdomain validation and database names per routing mode (engine.naming)."""

import pytest

from engine import naming


@pytest.mark.parametrize("label", ["a", "9", "acme", "acme-2", "a" * 63, "x-y-z"])
def test_valid_subdomains(label):
    assert naming.check_subdomain(label) == label


@pytest.mark.parametrize("label", [
    "", "A", "Acme", "-a", "a-", "a_b", "a.b", "a b", "a" * 64, "é", "a;b",
    'x"; DROP DATABASE postgres; --', "a\nb",
])
def test_invalid_subdomains(label):
    with pytest.raises(naming.NamingError):
        naming.check_subdomain(label)


@pytest.mark.parametrize("label", sorted(naming.ALWAYS_RESERVED))
def test_always_reserved(label):
    with pytest.raises(naming.NamingError, match="reserved"):
        naming.check_subdomain(label)


def test_extra_reserved():
    with pytest.raises(naming.NamingError, match="reserved"):
        naming.check_subdomain("shop", reserved={"shop"})


def test_database_name_per_routing_mode():
    assert naming.database_name("acme", "example.com", "host") == "acme.example.com"
    assert naming.database_name("acme", "example.com", "subdomain") == "acme"
    assert naming.dbfilter_for("host") == "^%h$"
    assert naming.dbfilter_for("subdomain") == "^%d$"


def test_database_name_length_limit():
    name = naming.database_name("a" * 51, "example.com")  # 51 + 1 + 11 = 63
    assert len(name) == 63
    with pytest.raises(naming.NamingError, match="longer than PostgreSQL"):
        naming.database_name("a" * 52, "example.com")


@pytest.mark.parametrize("domain", ["", "Example.com", "exa mple.com", "-x.com", "x..com"])
def test_invalid_base_domain(domain):
    with pytest.raises(naming.NamingError):
        naming.database_name("acme", domain)


def test_unknown_routing_mode():
    with pytest.raises(naming.NamingError, match="routing"):
        naming.database_name("acme", "example.com", "path")


def test_dbfilter_maps_host_to_exactly_that_database():
    """Mirror Odoo's dbfilter substitution: %h = host, %d = first label."""
    import re
    host = naming.host_for("acme", "example.com")
    candidates = ["acme.example.com", "acme", "acme.example.com.evil", "xacme.example.com"]
    for routing, expected in (("host", ["acme.example.com"]), ("subdomain", ["acme"])):
        pattern = naming.dbfilter_for(routing).replace("%h", re.escape(host)).replace(
            "%d", re.escape(host.partition(".")[0]))
        assert [db for db in candidates if re.match(pattern, db)] == expected
