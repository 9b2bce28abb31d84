"""Helpers of the backup tests: small databases and filestores, read back for comparison."""

import os
import uuid

import psycopg2

from engine import backup

#: The stamp of the backups the tests take.
STAMP = "20250102T030405Z"
#: A filestore: compressible and incompressible files, nested, one empty.
FILES = {
    "ab/ab12cd": b"attachment one" * 100,
    "ab/ab99ff": os.urandom(50_000),  # incompressible, like most attachments
    "cd/ef/deep": b"nested",
    "checklist/empty": b"",
}
#: Odoo's module table, as much of it as a backup reads.
MODULES = {"base": "18.0.1.3", "mail": "18.0.1.15", "web": "18.0.1.0"}


def run(params, database, *statements):
    """Run ``statements`` in one committed transaction on ``database``."""
    conn = psycopg2.connect(dbname=database, **params)
    try:
        with conn, conn.cursor() as cr:
            for statement in statements:
                cr.execute(statement)
    finally:
        conn.close()


def counts_of(params, database):
    conn = psycopg2.connect(dbname=database, **params)
    try:
        return backup.row_counts(conn)
    finally:
        conn.close()


#: A few tables with rows, one with a hostile name, one empty.
TABLES = (
    "CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar)",
    "INSERT INTO res_partner (name) SELECT 'p' || g FROM generate_series(1, 250) g",
    "CREATE TABLE ir_attachment (id serial PRIMARY KEY, "
    "partner_id int REFERENCES res_partner(id), store_fname varchar)",
    "INSERT INTO ir_attachment (partner_id, store_fname) VALUES (1, 'ab/ab12cd'), "
    "(2, 'ab/ab99ff')",
    'CREATE TABLE "we""ird Table" (v int)',
    'INSERT INTO "we""ird Table" SELECT generate_series(1, 7)',
    "CREATE TABLE empty_one (v int)")


def fill(params, database, modules=True):
    """:data:`TABLES`, and (unless ``modules`` is false) Odoo's module table."""
    run(params, database, *TABLES)
    if modules:
        run(params, database,
            "CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar, "
            "latest_version varchar, state varchar)",
            "INSERT INTO ir_module_module (name, latest_version, state) VALUES %s, "
            "('sale', '18.0.1.2', 'uninstalled')" % ", ".join(
                "('%s', '%s', 'installed')" % item for item in MODULES.items()))
    return database


def write_tree(root, files=FILES):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty_dir").mkdir(parents=True, exist_ok=True)
    return root


def read_files(root):
    """``{relative path: content}`` of the regular files under ``root``."""
    files = {}
    for base, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def new_name(scratch_db, prefix="saas_pytest_new"):
    """A database name that does not exist yet, dropped at the end of the test."""
    return scratch_db(create=False, name="%s_%s" % (prefix, uuid.uuid4().hex[:8]))


def database_exists(params, name):
    conn = psycopg2.connect(dbname="postgres", **params)
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cr.fetchone() is not None
    finally:
        conn.close()
