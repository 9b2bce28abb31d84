"""Does a customer's own domain point at their instance yet?

The customer creates ``CNAME <their domain> -> <instance host>`` at their DNS
provider; until it resolves, the proxy cannot route the domain and a
certificate cannot be issued.  The check asks the system's resolver (what
the server itself will see): the domain passes when its canonical name is
the instance's host (the CNAME) or, for providers that flatten CNAMEs at the
zone apex, when it resolves to one of the addresses the instance's host
resolves to.
"""

import socket

from .naming import NamingError, check_domain


def resolve(name):
    """``(canonical name, addresses)`` of ``name``, or ``(None, set())`` if it does
    not resolve."""
    try:
        canonical, _aliases, addresses = socket.gethostbyname_ex(name)
    except (socket.gaierror, socket.herror, UnicodeError):
        return None, set()
    return canonical.rstrip(".").lower(), set(addresses)


def points_to(domain, target, resolver=resolve):
    """``(ok, detail)``: whether ``domain`` reaches ``target``, and what was seen.

    ``resolver`` is :func:`resolve` (the system's); another one answers for
    names no test resolver knows."""
    for name in (domain, target):
        try:
            check_domain(name)
        except NamingError as exc:
            raise ValueError("not a domain name: %r" % (name,)) from exc
    canonical, addresses = resolver(domain)
    if canonical is None:
        return False, "%s does not resolve" % domain
    if canonical == target:
        return True, "%s is an alias of %s" % (domain, target)
    _target_canonical, target_addresses = resolver(target)
    shared = addresses & target_addresses
    if shared:
        return True, "%s resolves to %s, as %s does" % (
            domain, ", ".join(sorted(shared)), target)
    return False, "%s resolves to %s, not to %s (%s)" % (
        domain, ", ".join(sorted(addresses)) or canonical, target,
        ", ".join(sorted(target_addresses)) or "unresolved")
