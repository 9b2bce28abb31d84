"""The benchmark scripts' way into ./dev's machinery: Odoo, virtualenv, PostgreSQL, conf."""

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def workspace(conf_name):
    """Yield ``(ws, conf)``: a prepared ./dev workspace and an odoo.conf written for it
    (``.local/<conf_name>``, on a free HTTP port); everything started is stopped after."""
    sys.path.insert(0, str(REPO / "tools"))
    from saasdev.odoo_conf import write_conf
    from saasdev.pgcluster import free_port
    from saasdev.workspace import Workspace

    ws = Workspace(REPO, print)
    ws.find_odoo(required=True)
    ws.prepare()
    try:
        conf = ws.local / conf_name
        write_conf(conf, odoo=ws.odoo, addons_dir=ws.addons_dir, data_dir=ws.data_dir,
                   pg=ws.pg, http_port=free_port())
        yield ws, conf
    finally:
        ws.close()


def rerun_in_venv(script, conf_name="odoo-bench.conf"):
    """Prepare (venv, PostgreSQL, conf) with ./dev's machinery, then run ``script`` again
    inside the venv (``SAAS_BENCH_CONF`` names the conf); its exit code.

    A Ctrl-C reaches the bench process too (same process group), which then
    drops what it made: this process waits for it rather than stopping the
    PostgreSQL cluster under its cleanup.  A SIGTERM is passed on.
    """
    with workspace(conf_name) as (ws, conf):
        ws.odoo_cmd(conf)  # makes sure the launcher exists
        env = dict(ws.child_env(), SAAS_BENCH_CONF=str(conf))
        child = subprocess.Popen([str(ws.python), script, *sys.argv[1:]], env=env)
        signal.signal(signal.SIGINT, lambda _sig, _frame: None)
        signal.signal(signal.SIGTERM, lambda _sig, _frame: child.send_signal(signal.SIGTERM))
        return child.wait()
