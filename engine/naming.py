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
"""

import re

SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                       r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
#: PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
MAX_DATABASE_NAME = 63

ROUTING_HOST = "host"
ROUTING_SUBDOMAIN = "subdomain"
DBFILTERS = {ROUTING_HOST: "^%h$", ROUTING_SUBDOMAIN: "^%d$"}

#: Never given to a customer: service hosts and PostgreSQL's own databases.
ALWAYS_RESERVED = frozenset({
    "www", "mail", "admin", "api", "postgres", "template0", "template1",
})


class NamingError(ValueError):
    """A name that must not be used, with the reason a person can act on."""


def check_subdomain(label, reserved=()):
    """Return ``label`` when it is a usable subdomain, else raise :class:`NamingError`."""
    if not label:
        raise NamingError("A subdomain is required.")
    if not SUBDOMAIN_RE.match(label):
        raise NamingError(
            "%r is not a valid subdomain: use 1 to 63 lowercase letters, digits or hyphens, "
            "starting and ending with a letter or digit." % label)
    if label in ALWAYS_RESERVED or label in set(reserved):
        raise NamingError("The subdomain %r is reserved." % label)
    return label


def check_base_domain(domain):
    """Return ``domain`` when it is a lowercase DNS name, else raise :class:`NamingError`."""
    if not domain or not DOMAIN_RE.match(domain):
        raise NamingError("%r is not a valid base domain (e.g. example.com)." % (domain or ""))
    return domain


def host_for(subdomain, base_domain):
    """The public host name of an instance."""
    return "%s.%s" % (subdomain, base_domain)


def database_name(subdomain, base_domain, routing=ROUTING_HOST):
    """The database name that ``dbfilter`` maps the instance's host to."""
    if routing == ROUTING_HOST:
        name = host_for(subdomain, check_base_domain(base_domain))
    elif routing == ROUTING_SUBDOMAIN:
        name = subdomain
    else:
        raise NamingError("Unknown routing mode %r." % routing)
    if len(name.encode()) > MAX_DATABASE_NAME:
        raise NamingError("The database name %r is longer than PostgreSQL's %d characters: "
                          "choose a shorter subdomain." % (name, MAX_DATABASE_NAME))
    return name


def dbfilter_for(routing):
    """The ``dbfilter`` the Odoo server needs for ``routing``."""
    return DBFILTERS[routing]
