"""Find the Odoo 18 a developer already has.

Odoo is not published on PyPI: people run it from a source checkout, from the
official Debian package or from a container.  The order of the search is the
one a person would expect:

1. ``ODOO_PATH`` (explicit wins; when it is wrong we stop and say so instead of
   silently using something else);
2. an ``odoo`` package importable by this interpreter, when it is 18.0;
3. the usual install places of source checkouts and of the Debian package.
"""

import glob
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ToolError

REQUIRED_SERIES = (18, 0)
_VERSION_RE = re.compile(r"^version_info\s*=\s*\(\s*(\d+)\s*,\s*(\d+)", re.MULTILINE)

#: Where source checkouts and packages usually live, most specific first.
USUAL_PLACES = (
    "/opt/odoo/18.0",
    "/opt/odoo18",
    "/opt/odoo-18",
    "/opt/odoo-18.0",
    "/opt/odoo/odoo",
    "/opt/odoo",
    "/opt/odoo*",
    "/opt/odoo/*",
    "/srv/odoo/18.0",
    "/srv/odoo",
    "~/odoo/18.0",
    "~/odoo",
    "~/src/odoo",
    "/odoo",
    "/usr/lib/python3/dist-packages",  # official Debian/Ubuntu package
)


@dataclass
class OdooInstall:
    """An Odoo tree: ``root`` is the folder that contains the ``odoo`` package."""

    root: Path
    version: tuple
    found_by: str

    @property
    def requirements(self):
        """Odoo's own requirements file (absent for the Debian package)."""
        path = self.root / "requirements.txt"
        return path if path.is_file() else None

    @property
    def system_packaged(self):
        """True for the Debian package, whose Python deps come from the system."""
        return self.requirements is None

    @property
    def addons_paths(self):
        """Community addons folders: ``addons/`` of a git checkout, ``odoo/addons``."""
        candidates = (self.root / "addons", self.root / "odoo" / "addons")
        return [p for p in candidates if p.is_dir()]

    @property
    def version_label(self):
        return "%d.%d" % self.version


@dataclass
class SearchReport:
    """What the search looked at, to explain a miss in one paragraph."""

    rejected: list = field(default_factory=list)

    def note(self, place, why):
        self.rejected.append("%s (%s)" % (place, why))


def read_version(root):
    """Return ``(major, minor)`` of the Odoo tree at ``root``, or ``None``."""
    release = Path(root) / "odoo" / "release.py"
    try:
        match = _VERSION_RE.search(release.read_text(encoding="utf-8"))
    except OSError:
        return None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _normalize(path):
    """Accept both the tree root and the ``odoo`` package folder itself."""
    path = Path(path).expanduser().resolve()
    if (path / "release.py").is_file() and path.name == "odoo":
        return path.parent
    return path


def _from_env(env):
    value = env.get("ODOO_PATH")
    if not value:
        return None
    root = _normalize(value)
    version = read_version(root)
    if version is None:
        raise ToolError("ODOO_PATH=%s does not contain Odoo (no odoo/release.py there)." % value)
    if version != REQUIRED_SERIES:
        raise ToolError(
            "ODOO_PATH=%s holds Odoo %d.%d; saas_manager needs Odoo 18.0." % (value, *version)
        )
    return OdooInstall(root, version, "ODOO_PATH")


def _from_import(report):
    try:
        spec = importlib.util.find_spec("odoo")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        report.note("import odoo", "not importable")
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent
    version = read_version(root)
    if version != REQUIRED_SERIES:
        report.note(str(root), "importable odoo is %s" % (version and "%d.%d" % version))
        return None
    return OdooInstall(root, version, "importable odoo")


def _expand(patterns):
    seen = []
    for pattern in patterns:
        for match in sorted(glob.glob(os.path.expanduser(pattern))):
            if match not in seen:
                seen.append(match)
    return seen


def _from_usual_places(report, patterns):
    for place in _expand(patterns):
        version = read_version(place)
        if version is None:
            continue
        if version != REQUIRED_SERIES:
            report.note(place, "Odoo %d.%d" % version)
            continue
        return OdooInstall(Path(place).resolve(), version, "usual place %s" % place)
    report.note("usual places", ", ".join(patterns))
    return None


def locate(env=None, places=USUAL_PLACES):
    """Return the :class:`OdooInstall` to use, or raise :class:`OdooNotFound`."""
    env = os.environ if env is None else env
    found = _from_env(env)
    if found:
        return found
    report = SearchReport()
    found = _from_import(report) or _from_usual_places(report, places)
    if found:
        return found
    raise OdooNotFound(report)


class OdooNotFound(ToolError):
    """No Odoo 18 anywhere we looked; the message tells how to provide one."""

    def __init__(self, report):
        self.report = report
        super().__init__(
            "Odoo 18 was not found. Looked at: %s. saas_manager is an Odoo 18 addon and "
            "Odoo is not on PyPI: get the 18.0 sources (a git checkout of the 18.0 branch, "
            "the 18.0 nightly source tarball, or the official odoo 18.0 Debian package) and "
            "either set ODOO_PATH to the folder that contains the 'odoo' package (for example "
            "ODOO_PATH=/opt/odoo/18.0), or install it in one of the usual places."
            % "; ".join(report.rejected)
        )
