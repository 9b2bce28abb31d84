"""Subdomain validation and database names per routing mode (engine.naming)."""

import pytest
from saasdev.run_cmd import BLANK_TEMPLATE_DB

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


def test_template_prefix_is_reserved_for_templates():
    with pytest.raises(naming.NamingError, match="templates'"):
        naming.check_new_subdomain("tpl-restaurant")
    assert naming.check_subdomain("tpl-restaurant") == "tpl-restaurant", "an older instance's"
    assert naming.check_new_subdomain("tpl") == "tpl"
    assert naming.check_new_subdomain("tplx-1") == "tplx-1"
    with pytest.raises(naming.NamingError, match="reserved"):
        naming.check_new_subdomain("shop", reserved={"shop"})


@pytest.mark.parametrize(("code", "routing", "expected"), [
    ("restaurant", "host", "tpl-restaurant.example.com"),
    ("restaurant", "subdomain", "tpl-restaurant"),
    ("my_shop", "host", "tpl-my-shop.example.com"),
    ("shop-2", "subdomain", "tpl-shop-2"),
])
def test_template_database_names(code, routing, expected):
    assert naming.template_database_name(code, "example.com", routing) == expected


@pytest.mark.parametrize("routing", ["host", "subdomain"])
def test_the_dev_tool_names_its_template_as_the_product_does(routing):
    assert BLANK_TEMPLATE_DB[routing] == naming.template_database_name(
        "blank", "localhost", routing)


@pytest.mark.parametrize(("code", "base_domain", "reason"), [
    ("", "example.com", "required"),
    ("Shop", "example.com", "lowercase"),
    ("a.b", "example.com", "only lowercase letters"),
    ("shop-", "example.com", "cannot start or end"),
    ("x" * 60, "example.com", "at most 63"),
    ("shop", "", "base domain is required"),
    ("x" * 50, "example-domain.com", "longer than PostgreSQL"),
])
def test_template_database_names_refused(code, base_domain, reason):
    with pytest.raises(naming.NamingError, match=reason):
        naming.template_database_name(code, base_domain, "host")


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


# -- hostile names -------------------------------------------------------------------------
# Generated, so that each rule is tried in many places: every hostile input must be
# refused with NamingError (never another exception, never accepted).

#: Characters that must never appear anywhere in a name.
BAD_CHARS = [
    " ", "\t", "\r", "\n", "\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\xa0",
    "\u2028", "\u2029", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u0301", "\u0000",
    "%", "_", "/", "\\", "'", '"', ";", "`", "*", "?", "$", "@", ":", "#", "&", "|", "<", ">",
    "(", ")", "{", "}", "[", "]", "=", "+", ",", "!", "~", "^",
]
#: Look-alikes of ASCII letters and digits (Cyrillic, Greek, Latin extended, fullwidth,
#: mathematical, superscript, other scripts' digits, Kelvin sign, dotless i, long s).
LOOKALIKES = [
    "\u0430cme", "acm\u0435", "\u0251cme", "\u03b1cme", "ac\u217fe", "\uff41\uff43\uff4d\uff45",
    "\uff11\uff12\uff13", "\u0661\u0662", "\u00b2", "\u2460", "\u212a", "\u0131", "\u017f",
    "\U0001d41a\U0001d41c", "ac\u1d0de", "a\u0308cme", "acme\u0307", "\u24d0cme", "\u0455hop",
    "\u0440ay", "\u0410CME", "\u00e9", "stra\u00dfe", "\u0627\u0644", "\u4e2d\u6587",
]
NOT_TEXT = [0, 5, 1.5, True, b"acme", bytearray(b"acme"), ["acme"], ("acme",), {"acme": 1},
            {"acme"}, object()]


def _mutations(name):
    """``name`` with every bad character before, after and inside it, and changed case."""
    middle = len(name) // 2
    for char in BAD_CHARS:
        yield char + name
        yield name + char
        yield name[:middle] + char + name[middle:]
    for changed in (name.upper(), name[0].upper() + name[1:], name.title()):
        if changed != name:
            yield changed


def _hostile_subdomains():
    names = []
    for base in ("acme", "shop1"):
        names.extend(_mutations(base))
    for reserved in sorted(naming.ALWAYS_RESERVED):
        names += [reserved, reserved.upper(), reserved.title(), reserved + "\n",
                  " " + reserved, reserved + ".", reserved + "\x00"]
    names += LOOKALIKES
    names += ["", " ", "\n", "\x00", ".", "..", "-", "--", "a.", ".a", "a..b", "a.b", "-a", "a-",
              "a" * 64, "a" * 100, "a" * 10000, "xn--", "xn--acme", "xn--80ak6aa92e",
              "xn--bcher-kva", "XN--acme", "ab--cd", "a1--b", "12--34", "aa---b", "00--",
              "acme\n\n", "\nacme", "127.0.0.1", "1.2.3.4", "0x7f.1", "::1", "[::1]",
              "acme.example.com", "*", "*.acme", "%", "_", "a%", "a_", "%d", "%h"]
    return names


def _hostile_domains():
    domains = []
    for base in ("example.com", "saas.test"):
        domains.extend(_mutations(base))
        left, _, right = base.partition(".")
        for label in ("-a", "a-", "a_b", "A", "xn--bcher-kva", "ab--cd", "a" * 64, "",
                      "\u0430", "\uff41", "a b", "a\nb", "a\x00b"):
            domains += ["%s.%s" % (label, base), "%s.%s" % (left, label),
                        "%s.%s.%s" % (left, label, right)]
    domains += [
        "", " ", ".", "..", ".example.com", "example.com.", "example..com", "example.com..",
        "127.0.0.1", "10.0.0.1", "1.2.3.4", "0.0.0.0", "192.168.1.1", "0x7f.1", "0x7f000001",
        "example.123", "example.0x1f", "2130706433", "localhost.1",
        "a" * 64 + ".com", ".".join(["a"] * 127) + ".com", "a" * 250 + ".com",
        "example.com/", "example.com:80", "example.com/path", "user@example.com", "*.example.com",
        "example.com\n", "example.com\r\n", "\texample.com", "example.com\u2028",
        "xn--bcher-kva.de", "bücher.de", "ex\u0430mple.com", "\uff45xample.com",
        "exa\u200dmple.com", "example.com\x00", "%2e.com", "example.c%6fm",
    ]
    return domains


HOSTILE_SUBDOMAINS = _hostile_subdomains()
HOSTILE_DOMAINS = _hostile_domains()


def test_the_hostile_sets_are_large():
    assert len(set(HOSTILE_SUBDOMAINS)) > 300
    assert len(set(HOSTILE_DOMAINS)) > 300


@pytest.mark.parametrize("label", HOSTILE_SUBDOMAINS + NOT_TEXT + [None, False],
                         ids=naming.shown)
def test_hostile_subdomains_are_refused(label):
    with pytest.raises(naming.NamingError):
        naming.check_subdomain(label)
    with pytest.raises(naming.NamingError):
        naming.database_name(label, "example.com", naming.ROUTING_SUBDOMAIN)
    with pytest.raises(naming.NamingError):
        naming.database_name(label, "example.com", naming.ROUTING_HOST)


@pytest.mark.parametrize("domain", HOSTILE_DOMAINS + NOT_TEXT + [None, False],
                         ids=naming.shown)
def test_hostile_domains_are_refused(domain):
    with pytest.raises(naming.NamingError):
        naming.check_base_domain(domain)
    with pytest.raises(naming.NamingError):
        naming.check_domain(domain)
    with pytest.raises(naming.NamingError):
        naming.database_name("acme", domain)
    assert not naming.is_domain(domain)


@pytest.mark.parametrize("subdomain, base_domain", [
    ("a" * 52, "example.com"), ("a" * 63, "example.com"), ("acme", "b" * 59),
    ("acme", ".".join(["b"] * 30)), ("a" * 40, "c" * 30 + ".com"),
])
def test_database_names_over_63_bytes_are_refused(subdomain, base_domain):
    naming.check_subdomain(subdomain)
    naming.check_base_domain(base_domain)
    with pytest.raises(naming.NamingError, match="longer than PostgreSQL"):
        naming.database_name(subdomain, base_domain)


def test_messages_name_the_problem_and_escape_the_input():
    cases = {
        "acme\n": "line breaks", "acme\x00": "control characters", "Acme": "lowercase",
        "xn--acme": "RFC 5891", "ab--cd": "3rd and 4th", "\u0430cme": "ASCII",
        "a_b": "lowercase letters a-z, digits and hyphens", "-a": "hyphen",
        "a.b": "without dots", "a" * 64: "at most 63", 5: "must be text, not int",
        "": "required",
    }
    for label, expected in [*cases.items(), (["a"], "must be text, not list")]:
        with pytest.raises(naming.NamingError, match=expected) as caught:
            naming.check_subdomain(label)
        message = str(caught.value)
        assert "\n" not in message and "\x00" not in message
        assert len(message) < 400
    with pytest.raises(naming.NamingError, match="IP address"):
        naming.check_base_domain("127.0.0.1")
    with pytest.raises(naming.NamingError, match="empty label"):
        naming.check_base_domain("example..com")
    with pytest.raises(naming.NamingError, match="at most 253"):
        naming.check_base_domain("a" * 250 + ".com")
    with pytest.raises(naming.NamingError, match=r"\.\.\.$|\.\.\. is not"):
        naming.check_subdomain("a" * 10000)


@pytest.mark.parametrize("label", [
    "a", "0", "9", "42", "acme", "acme-2", "a" * 63, "x-y-z", "a-b", "a--b", "abc--d",
    "ab-cd", "shop1", "1acme", "wwww", "mail2", "template2", "postgres-eu",
])
def test_good_subdomains_pass(label):
    assert naming.check_subdomain(label) == label


@pytest.mark.parametrize("domain", [
    "example.com", "localhost", "saas.test", "a.b.c", "my-saas.io", "x1.example.co.uk",
    "123.example.com", "10.example.com", "a" * 63 + ".com", ".".join(["a"] * 125) + ".abc",
    "example.c0m", "0x.example.com", "a--b.example.com",
])
def test_good_domains_pass(domain):
    assert naming.check_domain(domain) == domain
    assert naming.check_base_domain(domain) == domain
    assert naming.is_domain(domain)


def test_host_and_database_of_good_names():
    assert naming.host_for("acme", "saas.test") == "acme.saas.test"
    assert naming.database_name("a" * 51, "example.com") == "a" * 51 + ".example.com"
    assert naming.database_name("a" * 63, "example.com", naming.ROUTING_SUBDOMAIN) == "a" * 63


def test_patterns_use_whole_string_semantics():
    """Even used with ``match``, the exported patterns do not accept a final newline."""
    for pattern, good in ((naming.SUBDOMAIN_RE, "acme"), (naming.DOMAIN_RE, "example.com")):
        assert pattern.match(good)
        assert not pattern.match(good + "\n")
        assert not pattern.match(good + "\n\n")
    assert not naming.SUBDOMAIN_RE.match("xn--acme")
    assert not naming.DOMAIN_RE.match("ab--cd.example.com")


@pytest.mark.parametrize("name", ["acme", "client1.example.com", "saas_tpl_x-1", "_staging",
                                  "A" * 63, "a.b-c_d"])
def test_database_names_the_engine_may_create(name):
    assert naming.database_problem(name) is None


@pytest.mark.parametrize("name, reason", [
    ("", "required"), (None, "required"), (b"acme", "required"),
    ("a" * 64, "63 bytes"), ("é" * 32, "63 bytes"),  # 64 bytes: PostgreSQL would truncate
    ("-a", "not first"), (".a", "not first"), ("a b", "only letters"), ("a;b", "only letters"),
    ('x"; DROP DATABASE postgres; --', "only letters"), ("acme\n", "only letters"),
    ("a=b", "only letters"), ("a/b", "only letters"), ("é", "only letters"),
])
def test_database_names_the_engine_refuses(name, reason):
    assert reason in naming.database_problem(name)
