"""Reading an Odoo test log: counts, skips, and the zero-warning rule."""

from saasdev import odoo_log

DB = "saas_test_1"
PREFIX = "2026-11-26 20:00:00,123 4242"


def line(level, logger, message, db=DB):
    return "%s %s %s %s: %s" % (PREFIX, level, db, logger, message)


def test_counts_and_skips():
    lines = [
        line("INFO", "odoo.addons.saas_manager.tests.test_x",
             "skipped TestX.test_nginx : nginx is not installed"),
        line("INFO", "odoo.tests.result",
             "1 failed, 2 error(s) of 10 tests when loading database '%s'" % DB),
    ]
    report = odoo_log.analyse(lines, DB)
    assert (report.ran, report.failed, report.errors) == (10, 1, 2)
    assert report.skipped == ["odoo.addons.saas_manager.tests.test_x.TestX.test_nginx: "
                              "nginx is not installed"]
    assert report.passed == 6
    assert report.bad_lines == []


def test_any_warning_is_bad():
    bad = line("WARNING", "odoo.fields", "Field saas.instance.x: unknown parameter 'foo'")
    report = odoo_log.analyse([bad, line("ERROR", "odoo.sql_db", "bad query")], DB)
    assert len(report.bad_lines) == 2


def test_clone_zero_test_warning_is_allowed_but_not_for_the_test_db():
    clone = line("WARNING", "odoo.tests.result",
                 "0 failed, 0 error(s) of 0 tests when loading database 'demo.localhost'")
    own = line("WARNING", "odoo.tests.result",
               "0 failed, 0 error(s) of 0 tests when loading database '%s'" % DB)
    report = odoo_log.analyse([clone, own], DB)
    assert report.bad_lines == [own]


def test_allow_list_is_exact():
    near = line("WARNING", "odoo.tests.result",
                "0 failed, 1 error(s) of 3 tests when loading database 'demo.localhost'")
    assert odoo_log.analyse([near], DB).bad_lines == [near]


def test_a_failing_test_counts_once():
    lines = [
        line("ERROR", "odoo.addons.saas_manager.tests.test_x", "FAIL: TestX.test_y"),
        line("ERROR", "odoo.tests.result",
             "1 failed, 0 error(s) of 3 tests when loading database '%s'" % DB),
    ]
    report = odoo_log.analyse(lines, DB)
    assert (report.failed, report.errors, report.passed) == (1, 0, 2)
    assert report.bad_lines == []
    assert len(report.failure_lines) == 2


def test_skipped_subtests_are_counted_as_skipped():
    skipped = line("INFO", "odoo.addons.saas_manager.tests.test_x",
                   "skipped Subtest TestX.test_y (step='clone') : nginx missing")
    report = odoo_log.analyse([skipped], DB)
    assert report.skipped == ["odoo.addons.saas_manager.tests.test_x.Subtest TestX.test_y "
                              "(step='clone'): nginx missing"]
