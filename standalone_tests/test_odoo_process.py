"""engine.odoo_process: detached runs, found again by pid, stopped with their group."""

import os
import sys
import time

from engine import odoo_process


def wait_status(pid, status_file, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = odoo_process.poll(pid, status_file)
        if status != odoo_process.RUNNING:
            return status
        time.sleep(0.05)
    return odoo_process.RUNNING


def test_a_detached_run_reports_its_status_and_stderr(tmp_path):
    status = str(tmp_path / "job.status")
    pid = odoo_process.start([sys.executable, "-c", "import sys; sys.stderr.write('boom'); "
                              "sys.exit(3)"], status)
    assert pid != os.getpid()
    assert wait_status(pid, status) == 3
    assert "boom" in odoo_process.read_log(str(tmp_path / "none.log"), status)


def test_it_runs_in_its_own_session_and_stop_ends_the_whole_group(tmp_path):
    status = str(tmp_path / "job.status")
    pid = odoo_process.start([sys.executable, "-c", "import time; time.sleep(60)"], status)
    assert odoo_process.poll(pid, status) == odoo_process.RUNNING
    assert os.getsid(pid) == pid != os.getsid(0)
    assert odoo_process.stop(pid, status)
    assert not odoo_process._group_alive(pid)
    assert odoo_process.poll(pid, status) == odoo_process.LOST


def test_a_pid_that_is_not_the_run_is_never_signalled(tmp_path):
    status = str(tmp_path / "job.status")
    assert not odoo_process.is_running(os.getpid(), status)
    assert not odoo_process.stop(os.getpid(), status)
    assert odoo_process.poll(os.getpid(), status) == odoo_process.LOST


def test_which_log_lines_fail_a_build():
    log = "\n".join([
        "2026-12-01 10:00:00,000 7 INFO db odoo.modules.loading: loading 1 modules",
        "2026-12-01 10:00:01,000 7 ERROR db odoo.addons.iap.tools: service unreachable",
        "2026-12-01 10:00:02,000 7 ERROR db odoo.modules.registry: Failed to load registry",
        "2026-12-01 10:00:03,000 7 CRITICAL db odoo.addons.x: fatal",
    ])
    fatal, others = odoo_process.problems(log)
    assert fatal == ["Failed to load registry", "fatal"]
    assert others == ["odoo.addons.iap.tools: service unreachable"]


def test_command_repeats_server_options_and_keeps_no_empty_ones():
    args = odoo_process.command("py", "odoo-bin", None, "db", ["base", "mail"], options={
        "addons-path": "/a,/b", "db_host": None, "db_port": "5433", "db_user": ""})
    assert args[:2] == ["py", "odoo-bin"] and "-c" not in args
    assert "--addons-path=/a,/b" in args and "--db_port=5433" in args
    assert not [arg for arg in args if arg.startswith(("--db_host", "--db_user"))]
    assert args[args.index("-i") + 1] == "base,mail"


def test_demo_data_is_decided_by_the_template_not_the_configuration_file():
    """An odoo.conf with ``without_demo = all`` (common in production) must not drop the
    demo data a template asks for: the command line says it both ways."""
    with_demo = odoo_process.command("py", "odoo-bin", "/etc/odoo.conf", "db", ["base"],
                                     demo=True)
    without = odoo_process.command("py", "odoo-bin", "/etc/odoo.conf", "db", ["base"])
    assert "--without-demo=" in with_demo and "--without-demo=all" not in with_demo
    assert "--without-demo=all" in without


def test_a_run_whose_pid_was_not_recorded_is_found_by_its_status_file(tmp_path):
    """A worker killed between starting a run and recording its pid: the run is found
    again (the session leader, not one of its children) and can be stopped."""
    status = str(tmp_path / "job.status")
    pid = odoo_process.start([sys.executable, "-c", "import time; time.sleep(60)"], status)
    try:
        assert odoo_process.find(status) == pid
        assert odoo_process.find(str(tmp_path / "other.status")) is None
    finally:
        odoo_process.stop(pid, status)
    assert odoo_process.find(status) is None


def test_an_update_can_install_modules_in_the_same_run():
    args = odoo_process.command("py", "odoo-bin", None, "db", ["sale"], update=True,
                                install=["crm", "project"])
    assert args[args.index("-u") + 1] == "sale"
    assert args[args.index("-i") + 1] == "crm,project"
    only_install = odoo_process.command("py", "odoo-bin", None, "db", [], update=True,
                                        install=["crm"])
    assert "-u" not in only_install and only_install[only_install.index("-i") + 1] == "crm"
