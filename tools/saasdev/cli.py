"""Command line of the developer tool: ``./dev run`` and ``./dev test``."""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import run_cmd, test_cmd
from .errors import ToolError
from .workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def say(message):
    print(
        "[dev] " + message if message and not message.startswith(("\n", "!")) else message,
        flush=True,
    )


def run_process(cmd, cwd=None, env=None, echo=False):
    """Run a child; its output is shown live when ``echo``, else captured."""
    if echo:
        return subprocess.run(cmd, cwd=cwd, env=env, check=False)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def parser():
    root = argparse.ArgumentParser(prog="dev", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a local SaaS manager (Odoo 18 + PostgreSQL)")
    run.add_argument("--port", type=int, default=8069, help="HTTP port (default 8069)")
    run.add_argument(
        "--routing",
        choices=("host", "subdomain"),
        default="host",
        help="dbfilter: host = ^%%h$ (default), subdomain = ^%%d$",
    )
    run.add_argument("--workers", type=int, default=0,
                     help="Odoo workers (default 0 = threaded, which also serves the browser's "
                          "websocket; N > 0 = prefork, websocket on the port + 3)")
    test = sub.add_parser("test", help="lint, standalone tests and the Odoo test suite")
    test.add_argument("--no-lint", action="store_true", help="skip ruff and pylint-odoo")
    test.add_argument("--tags", default=test_cmd.DEFAULT_TAGS,
                      help="Odoo --test-tags, e.g. /saas_manager:TestSubscriptionLifecycle "
                           "(default: the whole module)")
    test.add_argument("--no-standalone", action="store_true",
                      help="skip the standalone (pytest) suite")
    test.add_argument("--no-odoo", action="store_true",
                      help="skip the Odoo suite (said loudly, as when Odoo is absent)")
    return root


def main(argv=None):
    args = parser().parse_args(argv)
    ws = Workspace(REPO, say)
    # A supervisor's SIGTERM stops as cleanly as Ctrl-C: every `finally` runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.command == "run":
            return run_cmd.main(
                ws, run_process, port=args.port, routing=args.routing, workers=args.workers
            )
        return test_cmd.main(ws, run_process, lint=not args.no_lint, tags=args.tags,
                             standalone=not args.no_standalone, odoo=not args.no_odoo)
    except ToolError as exc:
        print("dev %s: %s" % (args.command, exc), file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        ws.close()
        return 130
    except Exception as exc:  # an unexpected failure: one line, details on demand
        ws.close()
        if os.environ.get("SAAS_DEV_DEBUG"):
            raise
        print("dev %s: unexpected error: %s: %s (SAAS_DEV_DEBUG=1 shows the traceback)"
              % (args.command, type(exc).__name__, exc), file=sys.stderr, flush=True)
        return 1
