"""A cached virtualenv with Odoo's requirements and ours.

The venv lives outside the clone (``$SAAS_DEV_CACHE`` or
``$XDG_CACHE_HOME/saas_manager``, default ``~/.cache/saas_manager``) under a
name derived from everything that shapes it (Python version, Odoo's
requirements, ours, the test tools), so a second run reuses it in
milliseconds and a changed requirement builds a new one instead of patching an
old one.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import ToolError

#: Odoo 18's pins that do not install on a current toolchain, and what we use.
#: cbor2 5.4.2 has no wheel for CPython 3.11 and its sdist no longer builds;
#: 5.4.6 is the same API (bug-fix releases only).
REQUIREMENT_FIXES = {
    "cbor2==5.4.2": "cbor2==5.4.6",
}
#: Odoo requirements we leave out: python-ldap only serves the auth_ldap
#: module, and building it needs system headers (libldap2-dev, libsasl2-dev).
REQUIREMENT_SKIPS = ("python-ldap",)
#: Pins Odoo needs but does not state: gevent (Odoo's websocket process in
#: prefork mode) loads its plugins through pkg_resources, which cannot find
#: zope.interface >= 7 (renamed distribution metadata); these are the newest
#: releases that gevent 22.10 loads.
REQUIREMENT_EXTRAS = ("zope.interface==6.4.post2", "zope.event==5.0")


def cache_root(env=None):
    env = os.environ if env is None else env
    if env.get("SAAS_DEV_CACHE"):
        return Path(env["SAAS_DEV_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "saas_manager"


def adapted_odoo_requirements(text):
    """Odoo's requirements with the known-broken pins fixed and skips removed."""
    lines = []
    for line in text.splitlines():
        name = re.split(r"[=<>; ]", line.strip(), maxsplit=1)[0].lower()
        if name in REQUIREMENT_SKIPS:
            continue
        fixed = line
        for broken, replacement in REQUIREMENT_FIXES.items():
            if line.strip().startswith(broken):
                fixed = line.replace(broken, replacement, 1)
        lines.append(fixed)
    lines += ["# added by ./dev (see REQUIREMENT_EXTRAS)", *REQUIREMENT_EXTRAS]
    return "\n".join(lines) + "\n"


class Venv:
    """The virtualenv for one (Odoo, requirements) combination."""

    #: Start of the venv's folder name in the cache (the fingerprint follows).
    prefix = "venv-"

    def __init__(self, repo, odoo, env=None):
        self.repo = Path(repo)
        self.odoo = odoo
        self.env = os.environ if env is None else env
        self.path = cache_root(self.env) / (self.prefix + self._fingerprint())

    @property
    def python(self):
        return self.path / "bin" / "python"

    def _requirement_texts(self):
        texts = {}
        if self.odoo and self.odoo.requirements:
            raw = self.odoo.requirements.read_text(encoding="utf-8")
            texts["odoo-requirements.txt"] = adapted_odoo_requirements(raw)
        for name in ("requirements.txt", "test-requirements.txt"):
            texts[name] = (self.repo / name).read_text(encoding="utf-8")
        return texts

    def _fingerprint(self):
        digest = hashlib.sha256(sys.version.encode())
        digest.update(b"system" if self.odoo and self.odoo.system_packaged else b"isolated")
        for name, text in sorted(self._requirement_texts().items()):
            digest.update(name.encode() + b"\0" + text.encode())
        return digest.hexdigest()[:12]

    def ensure(self, say):
        """Return the venv's python, building the venv first when needed."""
        if (self.path / ".complete").is_file():
            say("virtualenv: reusing %s" % self.path)
            return self.python
        say("virtualenv: building %s (first run only, a minute or two)" % self.path)
        self._build()
        return self.python

    def _build(self):
        # Built in place; ``.complete`` is written last, so an interrupted build
        # is wiped and redone on the next run instead of being trusted.
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "venv", str(self.path)]
        if self.odoo and self.odoo.system_packaged:
            args.insert(3, "--system-site-packages")
        self._check(args, "creating the virtualenv")
        req_args = []
        for name, text in self._requirement_texts().items():
            (self.path / name).write_text(text, encoding="utf-8")
            req_args += ["-r", str(self.path / name)]
        self._check(
            [str(self.python), "-m", "pip", "install", "--quiet", *req_args],
            "installing requirements",
        )
        (self.path / ".complete").write_text("ok\n", encoding="utf-8")

    @staticmethod
    def _check(args, what):
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
            raise ToolError("virtualenv: %s failed:\n  %s" % (what, "\n  ".join(tail)))
