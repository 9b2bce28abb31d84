"""The benchmark scripts' way into ./dev's machinery: Odoo, virtualenv, PostgreSQL, conf."""

import contextlib
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
