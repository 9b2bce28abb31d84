"""Run Odoo itself as a separate process: build or update a database.

Installing the modules of a vertical template takes minutes, so it never runs
inside a user's request, nor inside the manager's own process: a separate
Odoo process with the server's own configuration (same addons path, same
PostgreSQL) does it, and its log is kept.
"""

import re
import subprocess

_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (\w+) \S+ (.*)$")


def command(python, launcher, rcfile, database, modules, *, update=False, demo=False,
            lang=None, logfile=None):
    """The command line that installs (or, with ``update``, updates) ``modules``."""
    args = [python, launcher, "-c", rcfile, "-d", database,
            "-u" if update else "-i", ",".join(modules), "--stop-after-init", "--no-http"]
    if not demo:
        args.append("--without-demo=all")
    if lang and lang != "en_US":
        args.append("--load-language=%s" % lang)
    if logfile:
        args.append("--logfile=%s" % logfile)
    return args


def run(args, env=None, timeout=3600):
    """Run Odoo; return its exit status (a timeout counts as a failure, -1)."""
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        return -1


def first_problem(log_text, levels=("ERROR", "CRITICAL")):
    """The first message at one of ``levels`` in an Odoo log (``None`` if there is none)."""
    for line in log_text.splitlines():
        match = _LINE_RE.match(line)
        if match and match.group(1) in levels:
            return match.group(2).strip()
    return None


def tail(text, size=4000):
    """The end of a log, to show on the template."""
    return text[-size:]
