"""Slow check: build the Restaurant, E-commerce and Services templates for real.

Uses the module's own build path (``saas.template._build``: a separate Odoo
process with the server's configuration) through ``odoo shell`` on ./dev's
manager database, prints each build's time, size and module count, then drops
the databases again (``--keep`` keeps them, ready to configure).

    python3 bench/build_vertical_templates.py [--keep]

Takes several minutes (community modules only).
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from dev_workspace import workspace  # noqa: E402

SHELL_SCRIPT = """
import json
import time
keep = %(keep)r
for code in ("restaurant", "ecommerce", "services"):
    template = env.ref("saas_manager.template_" + code)
    if template.state != "draft":
        print("SKIP", code, template.state)
        continue
    template.write({"state": "building", "build_mode": "install", "build_pid": False})
    template._build_step()  # starts the detached build process
    env.cr.commit()
    while template.state == "building":
        time.sleep(2)
        template._build_step()  # collects it once it ended
        env.cr.commit()
    print("RESULT " + json.dumps({
        "code": code, "state": template.state, "seconds": round(template.build_seconds, 1),
        "size_mb": round(template.size_mb, 1),
        "modules": len((template.installed_modules or "").split(", ")),
        "error": template.state == "error" and template.build_log}))
    if not keep and template.state == "configuring":
        template._drop_database()
        template.write({"state": "draft", "installed_modules": False, "size_mb": 0})
        env.cr.commit()
"""


def main():
    with workspace("odoo.conf") as (ws, conf):
        from saasdev import run_cmd
        from saasdev.cli import run_process

        run_cmd.ensure_manager_db(ws, run_process, conf)
        script = SHELL_SCRIPT % {"keep": "--keep" in sys.argv}
        done = subprocess.run(ws.odoo_cmd(conf, "-d", run_cmd.MANAGER_DB, "--no-http",
                                          "--log-level=warn", command="shell"),
                              input=script, capture_output=True, text=True, cwd=ws.repo,
                              env=ws.child_env(), check=False)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(("RESULT", "SKIP"))]
        print("\n".join(lines) or done.stderr[-3000:])
        return 0 if lines and all('"state": "configuring"' in ln for ln in lines
                                  if ln.startswith("RESULT")) else 1


if __name__ == "__main__":
    sys.exit(main())
