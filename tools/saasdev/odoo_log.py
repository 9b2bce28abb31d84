"""Read an Odoo log: test counts, and every WARNING/ERROR line that is not allowed.

The module must install and run its tests with zero warnings, so any line at
WARNING level or above fails the run unless it matches :data:`ALLOWED`, where
each entry says why it is harmless.
"""

import re
from dataclasses import dataclass, field

_LEVEL_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (WARNING|ERROR|CRITICAL) ")
_REPORT_RE = re.compile(
    r"odoo\.tests\.result: (\d+) failed, (\d+) error\(s\) of (\d+) tests "
    r"when loading database '([^']+)'"
)
_SKIP_RE = re.compile(r" INFO \S+ (odoo\.addons\.\S+): skipped (.+?) : (.*)$")
#: A failing test's own report lines: already counted as that test's failure.
_TEST_FAILURE_RE = re.compile(r" ERROR \S+ (odoo\.addons\.\S+\.tests\.\S+: (FAIL|ERROR): "
                              r"|odoo\.tests\.result: \d+ failed, \d+ error)")

#: (regex, why it is allowed).  Keep this list short and exact.
ALLOWED = (
    (
        re.compile(
            r" WARNING \S+ odoo\.tests\.result: 0 failed, 0 error\(s\) of 0 tests "
            r"when loading database '[^']+'$"
        ),
        "A test that clones a database and serves it through the test HTTP server makes Odoo "
        "load that clone's registry; at the end Odoo reports the clone's (empty) test run at "
        "WARNING level. Only that exact 0-of-0 line is allowed, and never for the test "
        "database itself (see analyse()).",
    ),
)


@dataclass
class OdooTestReport:
    """What one ``--test-enable`` run of Odoo said about itself."""

    ran: int = 0
    failed: int = 0
    errors: int = 0
    skipped: list = field(default_factory=list)
    bad_lines: list = field(default_factory=list)
    failure_lines: list = field(default_factory=list)
    reported: bool = False

    @property
    def passed(self):
        return max(self.ran - self.failed - self.errors - len(self.skipped), 0)


def is_allowed(line, database):
    """True for an allow-listed line that does not concern the test database itself."""
    if "when loading database '%s'" % database in line:
        return False
    return any(pattern.search(line) for pattern, _why in ALLOWED)


def analyse(lines, database):
    """Build the report of the test database ``database`` from its log lines."""
    report = OdooTestReport()
    for raw in lines:
        line = raw.rstrip()
        match = _REPORT_RE.search(line)
        if match and match.group(4) == database:
            report.failed, report.errors, report.ran = map(int, match.group(1, 2, 3))
            report.reported = True
        skip = _SKIP_RE.search(line)
        if skip:
            report.skipped.append("%s.%s: %s" % skip.group(1, 2, 3))
        if _LEVEL_RE.match(line) and not is_allowed(line, database):
            if _TEST_FAILURE_RE.search(line):
                report.failure_lines.append(line)
            else:
                report.bad_lines.append(line)
    return report
