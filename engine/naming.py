"""Subdomains, hosts and database names.

Odoo picks the database of a request with ``dbfilter``: ``%h`` is the request's
host name (``www.`` and the port stripped) and ``%d`` its first label.  So the
database that serves ``client1.example.com`` must be named:

* ``client1.example.com`` in *host* mode (``dbfilter = ^%h$``, the default:
  only hosts under our base domain reach a client database), or
* ``client1`` in *subdomain* mode (``dbfilter = ^%d$``: shorter names, but any
  domain whose first label matches reaches the database).

Every name is validated here before it can reach SQL; SQL quoting is still
done with ``psycopg2.sql.Identifier`` by whoever runs the statement.

The rules are strict on purpose, and nothing is normalized (no lowercasing,
no trimming, no IDNA mapping): a name is used exactly as given or refused.

* Whole-string matches only (``re.fullmatch`` / ``\\A...\\Z``): with
  ``re.match`` and ``$``, ``"acme\\n"`` passes, since ``$`` also matches before
  a final newline.
* A label is 1 to 63 characters ``a-z``, ``0-9`` and ``-`` (ASCII only), not
  starting or ending with ``-``.  Anything else (uppercase, spaces, control
  characters, ``%``, ``_``, quotes, Unicode look-alikes, fullwidth digits,
  zero-width or combining characters) is refused.
* No ``--`` in the 3rd and 4th positions (``xn--…``, ``ab--cd``): RFC 5891
  §4.2.3.1 reserves those labels.  A-labels (punycode) are not accepted
  either: validating them needs a full IDNA 2008 check (decoding, script
  mixing, bidi rules), and a hostile one decodes to a look-alike of another
  customer's name.  Internationalized names are therefore not supported.
* A domain (base domain, custom domain) is at most 253 characters, without
  empty labels (``..``, a leading or trailing dot), and its last label is not
  numeric (all digits or ``0x`` + hex): browsers read such a host as an IPv4
  address (``127.0.0.1``, ``0x7f.1``).  All-digit labels elsewhere are fine,
  and a subdomain may be all digits (``42.example.com`` is a host name).
"""

import re

_LABEL = r"(?![a-z0-9-]{2}--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
#: A usable DNS label; use with ``fullmatch`` (the anchors are ``\A``/``\Z`` anyway).
SUBDOMAIN_RE = re.compile(r"\A%s\Z" % _LABEL)
#: The shape of a DNS name; :func:`check_domain` also refuses numeric last labels.
DOMAIN_RE = re.compile(r"\A(?=[a-z0-9.-]{1,253}\Z)%s(?:\.%s)*\Z" % (_LABEL, _LABEL))
_LABEL_CHARS_RE = re.compile(r"[a-z0-9-]+")
#: A database name the engine creates, renames or drops by itself (restore targets,
#: scratch and staging copies): letters, digits, ``_``, ``.`` and ``-``, as Odoo's
#: own database manager accepts, not starting with ``.`` or ``-``.
DATABASE_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_NUMERIC_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")
#: PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
MAX_DATABASE_NAME = 63
MAX_LABEL = 63
MAX_DOMAIN = 253

ROUTING_HOST = "host"
ROUTING_SUBDOMAIN = "subdomain"
DBFILTERS = {ROUTING_HOST: "^%h$", ROUTING_SUBDOMAIN: "^%d$"}

#: Never given to a customer: service hosts and PostgreSQL's own databases.
ALWAYS_RESERVED = frozenset({
    "www", "mail", "admin", "api", "postgres", "template0", "template1",
})
#: First characters of the templates' subdomains (:func:`template_database_name`):
#: no customer subdomain starts with them, so a template made later never meets one.
TEMPLATE_PREFIX = "tpl-"


class NamingError(ValueError):
    """A name that must not be used, with the reason a person can act on."""


def shown(value, limit=70):
    """``repr(value)``, shortened: messages quote hostile names, escaped and bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _text(value, what):
    """``value`` when it is a non-empty ``str``, else a clear :class:`NamingError`."""
    if value is None or value is False or value == "":
        raise NamingError("A %s is required." % what)
    if not isinstance(value, str):
        raise NamingError("A %s must be text, not %s." % (what, type(value).__name__))
    return value


#: (test, reason) in the order they are tried: the first failing test names the problem.
_LABEL_RULES = (
    (bool, "empty label (two dots in a row, or a dot at the start or the end)"),
    (lambda label: all(char.isprintable() and not char.isspace() for char in label),
     "spaces, line breaks and control characters are not allowed"),
    (str.isascii, "only ASCII letters a-z, digits and hyphens are allowed "
                  "(internationalized names are not supported)"),
    (lambda label: len(label) <= MAX_LABEL, "a label is at most %d characters" % MAX_LABEL),
    (lambda label: label == label.lower(), "use lowercase letters"),
    (_LABEL_CHARS_RE.fullmatch, "only lowercase letters a-z, digits and hyphens are allowed"),
    (lambda label: not label.startswith("-") and not label.endswith("-"),
     "a label cannot start or end with a hyphen"),
    (lambda label: label[2:4] != "--",
     "hyphens in the 3rd and 4th positions (as in xn--) are reserved for "
     "internationalized names (RFC 5891)"),
)


def label_problem(label):
    """Why ``label`` is not a DNS label we accept, or ``None`` when it is one."""
    return next((reason for test, reason in _LABEL_RULES if not test(label)), None)


def check_subdomain(label, reserved=()):
    """Return ``label`` when it is a usable subdomain, else raise :class:`NamingError`."""
    label = _text(label, "subdomain")
    problem = "a subdomain is one label, without dots" if "." in label else label_problem(label)
    if problem or not SUBDOMAIN_RE.fullmatch(label):
        raise NamingError(
            "%s is not a valid subdomain: %s. Use 1 to 63 lowercase letters, digits or "
            "hyphens, starting and ending with a letter or digit."
            % (shown(label), problem or "invalid characters"))
    if label in ALWAYS_RESERVED or label in {str(name).strip().lower() for name in reserved}:
        raise NamingError("The subdomain %r is reserved." % label)
    return label


def check_new_subdomain(label, reserved=()):
    """:func:`check_subdomain` for a subdomain being chosen (not one an instance already
    has): names starting with :data:`TEMPLATE_PREFIX` are the templates'.  An instance
    named so before the rule keeps its name."""
    label = check_subdomain(label, reserved)
    if label.startswith(TEMPLATE_PREFIX):
        raise NamingError("The subdomain %r is reserved: names starting with %r are the "
                          "templates'." % (label, TEMPLATE_PREFIX))
    return label


def check_domain(domain, what="domain"):
    """Return ``domain`` when it is a lowercase DNS name, else raise :class:`NamingError`."""
    domain = _text(domain, what)
    problem = None
    if len(domain) > MAX_DOMAIN:
        problem = "a domain is at most %d characters, not %d" % (MAX_DOMAIN, len(domain))
    else:
        problem = next(filter(None, map(label_problem, domain.split("."))), None)
    if not problem and _NUMERIC_RE.fullmatch(domain.rpartition(".")[2]):
        problem = "its last label is a number, so it reads as an IP address"
    if problem or not DOMAIN_RE.fullmatch(domain):
        raise NamingError("%s is not a valid %s (e.g. example.com): %s."
                          % (shown(domain), what, problem or "invalid characters"))
    return domain


def check_base_domain(domain):
    """Return ``domain`` when it is a usable base domain, else raise :class:`NamingError`."""
    return check_domain(domain, "base domain")


def is_domain(name):
    """True when ``name`` passes :func:`check_domain` (no exception)."""
    try:
        check_domain(name)
    except NamingError:
        return False
    return True


def host_for(subdomain, base_domain):
    """The public host name of an instance (both parts validated)."""
    return "%s.%s" % (check_subdomain(subdomain), check_base_domain(base_domain))


def database_name(subdomain, base_domain, routing=ROUTING_HOST):
    """The database name that ``dbfilter`` maps the instance's host to."""
    return _routed(check_subdomain(subdomain), base_domain, routing)


def template_database_name(code, base_domain, routing=ROUTING_HOST):
    """The database of the template ``code``, named so that ``dbfilter`` serves it while
    it is configured: ``tpl-<code>.<base domain>`` (host routing) or ``tpl-<code>``
    (subdomain routing), ``_`` of the code written ``-``.  Customers cannot take that
    subdomain (:data:`TEMPLATE_PREFIX`)."""
    label = TEMPLATE_PREFIX + _text(code, "template code").replace("_", "-")
    problem = label_problem(label)
    if problem:
        raise NamingError("The template code %s gives no usable subdomain: %s."
                          % (shown(code), problem))
    return _routed(label, base_domain, routing)


def _routed(label, base_domain, routing):
    """The database name of the validated ``label`` under ``routing``."""
    if routing == ROUTING_HOST:
        name = host_for(label, base_domain)
    elif routing == ROUTING_SUBDOMAIN:
        name = label
    else:
        raise NamingError("Unknown routing mode %s." % shown(routing))
    if len(name.encode()) > MAX_DATABASE_NAME:
        raise NamingError("The database name %r is longer than PostgreSQL's %d characters: "
                          "choose a shorter name." % (name, MAX_DATABASE_NAME))
    return name


def database_problem(name):
    """Why ``name`` is not a database name the engine may create or rename, or ``None``.

    Checked before any query: PostgreSQL silently truncates identifiers
    longer than 63 bytes, so a longer name would act on another database.
    """
    if not isinstance(name, str) or not name:
        return "a database name is required"
    if len(name.encode()) > MAX_DATABASE_NAME:
        return "longer than PostgreSQL's %d bytes" % MAX_DATABASE_NAME
    if not DATABASE_RE.fullmatch(name):
        return "only letters, digits, '_', '.' and '-' are allowed, not first '.' or '-'"
    return None


def dbfilter_for(routing):
    """The ``dbfilter`` the Odoo server needs for ``routing``."""
    return DBFILTERS[routing]
