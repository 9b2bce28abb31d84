"""Run Odoo itself as a separate, detached process: build or update a database.

Installing the modules of a vertical template takes minutes, so it never runs
inside a user's request, nor inside the manager's own process, nor under a
cron worker's time limit: :func:`start` launches a separate Odoo process with
the server's own configuration (same addons path, same PostgreSQL) in a
session of its own, so that a killed or recycled cron worker does not take it
down, and returns at once.  The process is found again by its pid, checked
against its command line (a recorded pid alone could name another process
after a reboot), and reports its exit status in a file, which any later
worker (or a restarted server) reads with :func:`poll`.

This file is also the small program that does the waiting: run as a script
(``python odoo_process.py STATUS_FILE -- ODOO_ARGS...``) it forks a session
leader that runs Odoo, keeps Odoo's stderr next to the status file, and
writes the status; the first process prints the leader's pid and exits, so
the caller never leaves a zombie behind.
"""

import os
import re
import signal
import subprocess
import sys
import time

_LINE_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (\w+) \S+ (\S+): (.*)")
#: ERROR lines of these loggers mean the database is not what was asked (a module
#: failed to install or load, a query failed); ERROR lines of other loggers (a
#: module's own complaint about, e.g., a missing optional service) are kept in
#: the log and reported, but do not fail the build.  CRITICAL always fails.
FATAL_ERROR_LOGGERS = re.compile(r"odoo\.(modules|sql_db|service|tools\.convert|models|fields)"
                                 r"(\..*)?|odoo")
RUNNING, LOST = "running", "lost"


class OdooProcessError(Exception):
    """The detached process could not be started."""


def command(python, launcher, rcfile, database, modules, *, update=False, install=(),
            demo=False, lang=None, logfile=None, options=None):
    """The command line that installs (or, with ``update``, updates) ``modules``; with
    ``update``, ``install`` names modules to install in the same run.

    ``options`` (name -> value) repeat the parent server's own settings on the
    command line, so that options given only on the parent's command line
    (as containers often do) reach the child too; empty values are left out.
    """
    args = [python, launcher]
    if rcfile:
        args += ["-c", rcfile]
    args += ["-d", database]
    if modules:
        args += ["-u" if update else "-i", ",".join(modules)]
    if update and install:
        args += ["-i", ",".join(install)]
    args += ["--stop-after-init", "--no-http"]
    for name, value in (options or {}).items():
        if value not in (None, "", False):
            args.append("--%s=%s" % (name, value))
    # Said both ways: a ``without_demo`` in the server's configuration file must not
    # decide for a template that asks for demo data.
    args.append("--without-demo=" if demo else "--without-demo=all")
    if lang and lang != "en_US":
        args.append("--load-language=%s" % lang)
    if logfile:
        args.append("--logfile=%s" % logfile)
    return args


def start(args, status_file, env=None, logfile=None):
    """Start ``args`` detached; return the pid of the session that runs it.  What an
    earlier run left under these names goes first (Odoo appends to its ``logfile``)."""
    for path in filter(None, (status_file, stderr_file(status_file), logfile)):
        if os.path.exists(path):
            os.remove(path)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), status_file, "--", *args],
                          env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=60)
    if done.returncode or not done.stdout.strip().isdigit():
        raise OdooProcessError("cannot start the Odoo process: %s" % (
            done.stderr.strip() or "exit %s" % done.returncode))
    return int(done.stdout.strip())


def stderr_file(status_file):
    return status_file + ".stderr"


def poll(pid, status_file):
    """The exit status once the process ended, else :data:`RUNNING`, or :data:`LOST` when
    it is gone without a status (killed, or the machine restarted under it)."""
    for _attempt in range(2):  # it may end between the two looks
        status = _read_status(status_file)
        if status is not None:
            return status
        if not is_running(pid, status_file):
            continue
        return RUNNING
    return LOST


def is_running(pid, status_file):
    """Is ``pid`` alive and the process started for ``status_file`` (not a reused pid)?"""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except (OSError, ValueError, TypeError):
        return False
    return os.fsencode(status_file) in cmdline


def find(status_file):
    """The pid of the session started for ``status_file`` (its waiting program's command
    line names the file), or None: a worker killed between starting a process and
    recording its pid must still be able to stop it."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and is_running(int(entry), status_file):
            try:
                if os.getpgid(int(entry)) == int(entry):
                    return int(entry)
            except ProcessLookupError:
                continue
    return None


def stop(pid, status_file, grace=10):
    """End the process group of a build that is still ours, and wait until it is gone.

    SIGTERM first, SIGKILL after ``grace`` seconds; returns True when there
    was a process to stop.  Waiting matters: the caller removes the database
    next, which a still-running Odoo could otherwise create again.
    """
    if not is_running(pid, status_file):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _group_alive(pid):
            return True
    return True


def _group_alive(pgid):
    """Does a live (not zombie) process of group ``pgid`` remain?"""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _read_status(status_file):
    try:
        with open(status_file, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def read_log(logfile, status_file):
    """Odoo's log file, then whatever it wrote to stderr (tracebacks before logging)."""
    text = ""
    for path in (logfile, stderr_file(status_file)):
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                part = handle.read()
            if part.strip():
                text += ("" if path == logfile else "\n--- stderr ---\n") + part
    return text


def problems(log_text):
    """``(fatal, others)``: the messages that fail a build, and the other ERROR lines."""
    fatal, others = [], []
    for line in log_text.splitlines():
        match = _LINE_RE.fullmatch(line.rstrip())
        if not match or match.group(1) not in ("ERROR", "CRITICAL"):
            continue
        level, logger, message = match.groups()
        if level == "CRITICAL" or FATAL_ERROR_LOGGERS.fullmatch(logger):
            fatal.append(message.strip())
        else:
            others.append("%s: %s" % (logger, message.strip()))
    return fatal, others


def first_problem(log_text, levels=("ERROR", "CRITICAL")):
    """The first message at one of ``levels`` in an Odoo log (``None`` if there is none)."""
    for line in log_text.splitlines():
        match = _LINE_RE.fullmatch(line.rstrip())
        if match and match.group(1) in levels:
            return match.group(3).strip()
    return None


def tail(text, size=4000):
    """The end of a log, to show on the template."""
    return text[-size:]


def _detached_main(status_file, args):
    """The waiting program (see the module's docstring)."""
    pid = os.fork()
    if pid:
        sys.stdout.write("%d\n" % pid)
        sys.stdout.flush()
        return
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # let the caller's pipes close: it waits for their end
        os.dup2(devnull, fd)
    with open(stderr_file(status_file), "wb") as err:
        code = subprocess.call(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err)
    partial = status_file + ".partial"
    with open(partial, "w", encoding="ascii") as handle:
        handle.write("%d\n" % code)
    os.replace(partial, status_file)
    os._exit(0)


if __name__ == "__main__":
    if sys.argv[2:3] != ["--"] or not sys.argv[3:]:
        sys.exit("usage: odoo_process.py STATUS_FILE -- ODOO_ARGS...")
    _detached_main(sys.argv[1], sys.argv[3:])
