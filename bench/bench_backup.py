"""Backup benchmark: saas_manager's verified backup vs plain pg_dump vs Odoo's zip dump.

Measured side by side in one run, on the same PostgreSQL and the same clone
of a vertical template (built as the module builds templates: an Odoo
process installing the vertical's modules, which leaves a filestore):

* **backup**: ``engine.backup.backup`` (``pg_dump -Fc``, filestore
  ``.tar.gz`` level 1, both read back and hashed) against plain ``pg_dump
  -Fc`` alone (anchor), ``pg_dump -Fc`` + ``tar czf`` of the filestore (the
  same work without the read-back), and Odoo's ``dump_db(..., "zip")`` (what
  the database manager's "Backup" does: plain SQL dump and filestore, zipped);
  Last, what a download costs: Odoo's zip produced from our stored backup
  (``engine.odoo_zip.export_zip``, the *Download (Odoo zip)* button);
* **restore**: ``engine.backup.restore`` against ``createdb`` +
  ``pg_restore`` (anchor), the same + ``tar xzf`` of the filestore,
  Odoo's ``restore_db`` of the zip (which also loads the new registry), and
  our import of that zip (``engine.odoo_zip.import_zip``: checked, then
  ``psql --single-transaction``).

Each of the N runs does every method once, in the order above; every
restore is checked once against the clone (row counts, filestore files).
MB/s is the clone's database size plus filestore bytes over the p50 time;
ratios are of p50 times.

Usage (uses ./dev's Odoo, virtualenv and PostgreSQL)::

    python3 bench/bench_backup.py [N] [--vertical restaurant|ecommerce|services]

N defaults to 5, the vertical to ecommerce.  Every database, filestore and
file the bench made is removed at the end, Ctrl-C included.  Not a test: the
numbers depend on the machine; compare them within one run only.
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_provision import pct  # noqa: E402
from dev_workspace import rerun_in_venv  # noqa: E402

MB = 1e6
BACKUPS = ("saas_manager backup (verified)", "pg_dump -Fc", "pg_dump -Fc + tar czf",
           "Odoo dump_db zip", "Odoo zip from our backup")
RESTORES = ("saas_manager restore", "createdb + pg_restore", "createdb + pg_restore + tar xzf",
            "Odoo restore_db zip", "saas_manager import of zip")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--vertical", default="ecommerce",
                        choices=("restaurant", "ecommerce", "services"))
    return parser.parse_args(argv)


def vertical_modules(code):
    """The vertical's modules, as the module's own template data lists them."""
    tree = ET.parse(REPO / "data" / "saas_template_data.xml")
    record = tree.find(".//record[@id='template_%s']" % code)
    return record.find("field[@name='module_names']").text.split(",")


class Bench:
    """One run's names, paths and measurements, and everything it must remove."""

    def __init__(self, conf, work):
        from odoo.tools import config

        self.conf, self.work, self.config = conf, work, config
        self.params = {key: config["db_" + key] for key in ("host", "port", "user")}
        if config["db_password"]:
            self.params["password"] = config["db_password"]
        self.tag = uuid.uuid4().hex[:6]
        self.made = []  # databases, dropped with their filestores at the end
        self.times = defaultdict(list)
        self.sizes = {}

    def new_database(self, role):
        name = "bench_backup_%s_%s" % (self.tag, role)
        self.made.append(name)
        return name

    def filestore(self, database):
        return self.config.filestore(database)

    def run_pg(self, *args):
        from engine import server

        done = subprocess.run(args, env=server.pg_env(self.params), check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError("%s failed: %s" % (args[0], done.stderr.strip()))

    def timed(self, label, function, *args):
        start = time.perf_counter()
        result = function(*args)
        self.times[label].append(time.perf_counter() - start)
        return result

    def drop(self, names):
        """Drop ``names`` with their filestores; one that cannot be is said and kept
        in ``made`` for the final cleanup."""
        from engine import filestore, pg
        from odoo import sql_db
        from odoo.modules.registry import Registry

        with pg.maintenance(self.params) as conn:
            for name in list(names):
                Registry.delete(name)
                sql_db.close_db(name)
                try:
                    pg.drop(conn, name)
                    filestore.remove_tree(self.filestore(name))
                except (pg.PgError, OSError) as exc:
                    print("could not drop %s: %s" % (name, exc))
                else:
                    self.made.remove(name)


def build_template(bench, modules):
    """The vertical template, built with the command line the module's build uses."""
    from engine import odoo_process

    template = bench.new_database("template")
    log = bench.work / "build.log"
    args = odoo_process.command(sys.executable, str(REPO / ".local" / "bin" / "odoo"),
                                bench.conf, template, modules, logfile=str(log))
    start = time.perf_counter()
    if subprocess.run(args, check=False, stdin=subprocess.DEVNULL).returncode:
        raise RuntimeError("template build failed:\n%s" % log.read_text()[-3000:])
    return template, time.perf_counter() - start


def make_subject(bench, template):
    """A clone of the template (database and hardlinked filestore), as provisioning makes."""
    from engine import filestore, pg

    subject = bench.new_database("subject")
    with pg.maintenance(bench.params) as conn:
        pg.clone(conn, template, subject)
        db_bytes = pg.size(conn, subject)
    filestore.clone_tree(bench.filestore(template), bench.filestore(subject))
    return subject, db_bytes, filestore.tree_size(bench.filestore(subject))


def backups(bench, subject, folder):
    """Every backup method once; what each restore starts from."""
    from engine import backup, odoo_zip
    from odoo import release
    from odoo.service import db as db_service

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    ours = bench.timed(BACKUPS[0], backup.backup, bench.params, subject,
                       bench.filestore(subject), str(folder), stamp)
    dump, tar, zip_path = folder / "plain.dump", folder / "plain.tar.gz", folder / "odoo.zip"
    bench.timed(BACKUPS[1], bench.run_pg, "pg_dump", "-Fc", "-f", str(dump), "--", subject)
    start = time.perf_counter()
    subprocess.run(["tar", "czf", str(tar), "-C", bench.filestore(subject), "."], check=True)
    bench.times[BACKUPS[2]].append(bench.times[BACKUPS[1]][-1] + time.perf_counter() - start)
    with open(zip_path, "wb") as stream:
        bench.timed(BACKUPS[3], db_service.dump_db, subject, stream, "zip")
    exported = folder / "exported.zip"
    manifest = odoo_zip.odoo_manifest(ours, subject, release.version_info, release.version)
    bench.timed(BACKUPS[4], odoo_zip.export_zip, bench.params, ours, str(exported), manifest)
    bench.sizes.update({BACKUPS[0]: ours.dump_bytes + ours.filestore_bytes,
                        BACKUPS[1]: dump.stat().st_size,
                        BACKUPS[2]: dump.stat().st_size + tar.stat().st_size,
                        BACKUPS[3]: zip_path.stat().st_size,
                        BACKUPS[4]: exported.stat().st_size})
    return ours, dump, tar, zip_path, exported


def plain_restore(bench, dump, database):
    bench.run_pg("createdb", "--template=template0", "--encoding=UTF8", "--lc-collate=C",
                 "--", database)
    bench.run_pg("pg_restore", "--no-owner", "--exit-on-error", "-d", database, "--", str(dump))


def restores(bench, made, index):
    """Every restore method once, into new databases; their names."""
    from engine import backup, odoo_zip
    from odoo.service import db as db_service

    ours, dump, tar, zip_path, exported = made
    targets = [bench.new_database("r%d_%s" % (index, role))
               for role in ("ours", "plain", "odoo", "import")]
    bench.timed(RESTORES[0], backup.restore, bench.params, ours, targets[0],
                bench.filestore(targets[0]))
    bench.timed(RESTORES[1], plain_restore, bench, dump, targets[1])
    start = time.perf_counter()
    os.makedirs(bench.filestore(targets[1]))
    subprocess.run(["tar", "xzf", str(tar), "-C", bench.filestore(targets[1])], check=True)
    bench.times[RESTORES[2]].append(bench.times[RESTORES[1]][-1] + time.perf_counter() - start)
    bench.timed(RESTORES[3], db_service.restore_db, targets[2], str(zip_path))
    bench.timed(RESTORES[4], odoo_zip.import_zip, bench.params, str(exported), targets[3],
                bench.filestore(targets[3]))
    return targets


def check_restored(bench, subject, targets):
    """Each restore holds what the clone holds: same row counts, same filestore files."""
    import psycopg2

    from engine import backup

    def content(name):
        with contextlib.closing(psycopg2.connect(dbname=name, **bench.params)) as conn:
            counts = backup.row_counts(conn)
        counts["(filestore files)"] = sum(len(files) for _root, _dirs, files
                                          in os.walk(bench.filestore(name)))
        return counts

    expected = content(subject)
    for name in targets:
        found = content(name)
        differ = sorted(key for key in expected.keys() | found.keys()
                        if expected.get(key) != found.get(key))
        if differ:
            raise RuntimeError("%s differs from %s in %s" % (name, subject, ", ".join(differ)))


def measure(bench, args):
    modules = vertical_modules(args.vertical)
    print("building the %s template (-i %s) ..." % (args.vertical, ",".join(modules)),
          flush=True)
    template, build_seconds = build_template(bench, modules)
    subject, db_bytes, fs_bytes = make_subject(bench, template)
    print("template built in %.0f s; its clone: database %.1f MB, filestore %.1f MB" % (
        build_seconds, db_bytes / MB, fs_bytes / MB), flush=True)
    for index in range(args.runs):
        folder = bench.work / ("run%d" % index)
        folder.mkdir()
        targets = restores(bench, backups(bench, subject, folder), index)
        if index == 0:
            check_restored(bench, subject, targets)
        bench.drop(targets)  # disk use stays at one run's worth
        shutil.rmtree(folder)
        print("run %d/%d done" % (index + 1, args.runs), flush=True)
    return db_bytes + fs_bytes


def table(bench, labels, total_bytes, anchors, with_size):
    heads = ["%-32s %7s %7s %7s" % ("", "p50 s", "p95 s", "MB/s")]
    heads += ["%9s" % "file MB"] if with_size else []
    heads += ["%10s" % ("x " + short) for short, _label in anchors]
    print(" ".join(heads))
    for label in labels:
        values, p50 = bench.times[label], pct(bench.times[label], 50)
        cells = ["%-32s %7.2f %7.2f %7.1f" % (label, p50, pct(values, 95),
                                               total_bytes / MB / p50)]
        cells += ["%9.1f" % (bench.sizes[label] / MB)] if with_size else []
        cells += ["%10.2f" % (p50 / pct(bench.times[anchor], 50)) for _s, anchor in anchors]
        print(" ".join(cells))


def report(bench, total_bytes, runs):
    print("\n%d runs; %.1f MB moved per backup or restore (database + filestore)\n" % (
        runs, total_bytes / MB))
    table(bench, BACKUPS, total_bytes, [("pg_dump", BACKUPS[1]), ("dump+tar", BACKUPS[2]),
                                        ("odoo zip", BACKUPS[3])], with_size=True)
    print()
    table(bench, RESTORES, total_bytes, [("pg_restore", RESTORES[1]), ("rest+tar", RESTORES[2]),
                                         ("odoo", RESTORES[3])], with_size=False)
    print("\nsize saas_manager backup / Odoo zip: %.2f" % (
        bench.sizes[BACKUPS[0]] / bench.sizes[BACKUPS[3]]))


def inner(args):
    from odoo.tools import config

    conf = os.environ["SAAS_BENCH_CONF"]
    config.parse_config(["-c", conf, "--log-level=warn"])
    config["list_db"] = True  # dump_db and restore_db are the database manager's functions
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="bench_backup_", dir=REPO / ".local"))
    bench = Bench(conf, work)
    try:
        total_bytes = measure(bench, args)
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.drop(bench.made)
        shutil.rmtree(work, ignore_errors=True)
    report(bench, total_bytes, args.runs)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    if os.environ.get("SAAS_BENCH_CONF"):
        inner(ARGS)
    else:
        sys.exit(rerun_in_venv(__file__))
