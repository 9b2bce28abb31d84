"""``dev test``: lint, the standalone pytest suite, then the Odoo suite.

Both test layers get one S3 server for the whole run (``SAAS_TEST_S3_*``
variables, see ``s3server``).

The Odoo suite runs in a brand-new database that is dropped afterwards; any
other database that appears during the run is a leak of the tests, reported as
a failure and dropped.  The last line is the summary ``N passed, N failed,
N skipped``.
"""

import ast
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from . import odoo_log, pgcluster
from .errors import ToolError
from .odoo_conf import write_conf

BANNER = "!" * 78
DEFAULT_TAGS = "/saas_manager"


@dataclass
class Tally:
    """Results of one layer."""

    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    details: list = field(default_factory=list)

    def line(self):
        return "%-12s %d passed, %d failed, %d skipped" % (
            self.name + ":",
            self.passed,
            self.failed,
            self.skipped,
        )


def run_lint(ws, run):
    """ruff and pylint-odoo; each is one check that passes or fails."""
    tally = Tally("lint")
    checks = {
        "ruff": [str(ws.python), "-m", "ruff", "check", "--no-cache", str(ws.repo)],
        "pylint-odoo": [
            str(ws.python),
            "-m",
            "pylint",
            "--rcfile",
            str(ws.repo / ".pylintrc"),
            "saas_manager",
        ],
    }
    for name, cmd in checks.items():
        proc = run(cmd, cwd=ws.addons_dir)
        if proc.returncode:
            tally.failed += 1
            tally.details.append("%s:\n%s" % (name, (proc.stdout + proc.stderr).strip()))
        else:
            tally.passed += 1
    return tally


def run_pytest(ws, run):
    """The tests that need PostgreSQL but no Odoo."""
    tally = Tally("standalone")
    report = ws.logs / "pytest.xml"
    report.unlink(missing_ok=True)
    # Run from inside standalone_tests: pytest must not treat the repository
    # root (the addon package, which imports Odoo) as part of the test tree.
    proc = run(
        [str(ws.python), "-m", "pytest", "-q", "--junitxml", str(report)],
        cwd=ws.repo / "standalone_tests",
        env=ws.child_env(),
        echo=True,
    )
    if not report.is_file():
        tally.failed = 1
        tally.details.append("pytest wrote no report (exit %d)" % proc.returncode)
        return tally
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            tally.failed += 1
        elif case.find("skipped") is not None:
            tally.skipped += 1
        else:
            tally.passed += 1
    if proc.returncode not in (0, 1) and not tally.failed:
        tally.failed = 1
        tally.details.append("pytest exited %d" % proc.returncode)
    return tally


def odoo_test_names(repo):
    """``Class.test_method`` of every Odoo test, read from the sources (no Odoo needed)."""
    names = []
    for path in sorted((repo / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                names += [
                    "%s.%s.%s" % (path.stem, node.name, item.name)
                    for item in node.body
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test")
                ]
    return names


def run_odoo_suite(ws, run, tags=DEFAULT_TAGS):
    """Install saas_manager in a fresh database with tests enabled, then read the log."""
    tally = Tally("odoo")
    database = "saas_test_%d" % int(time.time())
    conf = ws.local / "odoo-test.conf"
    write_conf(
        conf,
        odoo=ws.odoo,
        addons_dir=ws.addons_dir,
        data_dir=ws.data_dir,
        pg=ws.pg,
        http_port=pgcluster.free_port(),
        # Host routing as in production (clones are reached by their Host header),
        # plus the test database itself, which the test browser reaches by IP.
        dbfilter="^(%%h|%s)$" % database,
        encryption_key=False,  # the tests set their own (tests/common.py)
    )
    logfile = ws.logs / ("%s.log" % database)
    drop_stale_test_databases(ws)
    before = ws.databases()
    ws.say("odoo: installing saas_manager with tests in %s (log: %s)" % (database, logfile))
    proc = run(
        ws.odoo_cmd(
            conf,
            "-d",
            database,
            "-i",
            # Odoo's demo payment provider: the portal tour pays an invoice with it.
            "saas_manager,payment_demo",
            "--test-enable",
            "--test-tags",
            tags,
            "--stop-after-init",
            "--logfile",
            str(logfile),
        ),
        cwd=ws.repo,
        env=ws.child_env(),
    )
    lines = (
        logfile.read_text(encoding="utf-8", errors="replace").splitlines()
        if logfile.is_file()
        else []
    )
    report = odoo_log.analyse(lines, database)
    _tally_report(tally, report, proc.returncode)
    _check_leftovers(ws, tally, before | {database})
    _drop_quietly(ws, tally, [database])
    return tally


def _tally_report(tally, report, returncode):
    tally.passed = report.passed
    tally.failed = report.failed + report.errors
    tally.skipped = len(report.skipped)
    tally.details += ["skipped " + s for s in report.skipped]
    tally.details += report.failure_lines
    if not report.reported or report.ran == 0:
        tally.failed += 1
        tally.details.append("Odoo reported no test run (exit %d): see the log" % returncode)
    elif returncode and not tally.failed:
        tally.failed += 1
        tally.details.append("Odoo exited %d" % returncode)
    if report.bad_lines:
        tally.failed += 1
        tally.details.append(
            "%d WARNING/ERROR line(s) in the Odoo log:\n  %s"
            % (len(report.bad_lines), "\n  ".join(report.bad_lines[:30]))
        )


#: Names the test suite gives the databases it creates (test database, template
#: databases, clones under the tests' base domain "saas.test", and clones still
#: under their pending name, see saas_instance.PENDING_DATABASE, standby databases, and
#: the sign-up tour's clone).  Only such
#: names are ever dropped by this tool, so a concurrent ./dev run or other
#: databases on a shared server are safe.
TEST_DATABASE_RE = re.compile(
    r"\A(saas_test_[0-9]+|saas_tpl_test_[0-9a-f]+|[a-z0-9-]+\.saas\.test"
    r"|saas_(tmp|rst|old|drill|pool)_[0-9]+_[0-9a-f]{8}|signup-tour\.localhost)\Z")


def _check_leftovers(ws, tally, expected):
    """Fail on databases the tests created and did not drop; drop them."""
    leftovers = sorted(name for name in ws.databases() - expected
                       if TEST_DATABASE_RE.fullmatch(name))
    if not leftovers:
        return
    tally.failed += 1
    tally.details.append("tests left databases behind (now dropped): %s" % ", ".join(leftovers))
    _drop_quietly(ws, tally, leftovers)


def _drop_quietly(ws, tally, names):
    for name in names:
        try:
            ws.drop_database(name)
        except ToolError as exc:
            tally.details.append("could not drop %s: %s" % (name, exc))


def drop_stale_test_databases(ws):
    """Databases of an earlier, interrupted test run (same naming scheme)."""
    stale = sorted(name for name in ws.databases() if TEST_DATABASE_RE.fullmatch(name))
    if stale:
        ws.say("odoo: dropping %d database(s) left by an interrupted run: %s"
               % (len(stale), ", ".join(stale)))
        _drop_quietly(ws, Tally("stale"), stale)


def skipped_odoo(ws, reason=None):
    """The loud notice when Odoo is absent (or not asked for), with what did not run."""
    names = odoo_test_names(ws.repo)
    tally = Tally("odoo", skipped=len(names))
    ws.say(
        "\n".join(
            [
                BANNER,
                "%s: the Odoo test suite was SKIPPED (%d tests)." % (
                    "ODOO SUITE NOT ASKED FOR" if reason else "ODOO 18 NOT FOUND", len(names)),
                reason or ws.odoo_missing,
                "Skipped Odoo tests:",
                *("  - " + name for name in names),
                BANNER,
            ]
        )
    )
    return tally


def main(ws, run, *, lint=True, tags=DEFAULT_TAGS, standalone=True, odoo=True):
    """Run every layer and return the process exit status."""
    ws.find_odoo(required=False)
    ws.prepare()
    try:
        # One S3 server for the whole run; both test layers find it in their environment.
        s3 = ws.start_s3()
        if s3:
            ws.extra_env.update(s3.test_env())
        tallies = [run_lint(ws, run)] if lint else []
        if standalone:
            tallies.append(run_pytest(ws, run))
        if ws.odoo and odoo:
            tallies.append(run_odoo_suite(ws, run, tags))
        else:
            tallies.append(skipped_odoo(ws, "--no-odoo was given." if ws.odoo else None))
    finally:
        ws.close()
    for tally in tallies:
        for detail in tally.details:
            ws.say("[%s] %s" % (tally.name, detail))
    for tally in tallies:
        ws.say(tally.line())
    total = Tally(
        "total", *(sum(getattr(t, f) for t in tallies) for f in ("passed", "failed", "skipped"))
    )
    print(
        "%d passed, %d failed, %d skipped" % (total.passed, total.failed, total.skipped), flush=True
    )
    return 1 if total.failed else 0
