"""Standalone tests: real PostgreSQL, no Odoo.

``./dev test`` runs them with libpq's ``PG*`` variables pointing at its
PostgreSQL.  The addon package itself imports Odoo, so the engine is imported
as a top-level package from the repository root, and the developer tool from
``tools/``; helpers shared by several test files (``backup_helpers``) from here.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tools", REPO / "standalone_tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def pg_env():
    """libpq settings of the test server; the suite cannot run without one."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PG")}
    if not env.get("PGHOST"):
        pytest.fail("PGHOST is not set: run the suite through ./dev test")
    return env


@pytest.fixture(scope="session")
def pg_params(pg_env):
    """psycopg2 keywords for the test server."""
    params = {"host": pg_env["PGHOST"], "port": int(pg_env.get("PGPORT", 5432)),
              "user": pg_env.get("PGUSER")}
    if pg_env.get("PGPASSWORD"):
        params["password"] = pg_env["PGPASSWORD"]
    return params


@pytest.fixture(scope="session")
def bootstrap_params(pg_params):
    """psycopg2 keywords for the private cluster's superuser (not Odoo's role).

    Only ./dev's private cluster names one; on another server the tests that
    need a second role are skipped.
    """
    from saasdev.pgcluster import BOOTSTRAP_ENV

    user = os.environ.get(BOOTSTRAP_ENV)
    if not user:
        pytest.skip("no bootstrap role: the server is not ./dev's private cluster")
    return dict(pg_params, user=user)


@pytest.fixture
def scratch_db(pg_params):
    """A factory of uniquely named databases, all dropped at the end of the test."""
    import uuid

    from engine import pg

    made = []

    def make(prefix="saas_pytest", create=True, name=None):
        name = name or "%s_%s" % (prefix, uuid.uuid4().hex[:8])
        made.append(name)
        if create:
            with pg.maintenance(pg_params) as conn, conn.cursor() as cr:
                from psycopg2 import sql
                cr.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    yield make
    with pg.maintenance(pg_params) as conn:
        for name in made:
            pg.drop(conn, name)


@pytest.fixture
def schema_db(pg_params, scratch_db):
    """A factory of connections to new databases holding ``schema`` (SQL, committed),
    shaped like the part of a client database a test needs; closed at the end."""
    import psycopg2

    conns = []

    def make(schema, prefix="saas_pytest"):
        conn = psycopg2.connect(dbname=scratch_db(prefix), **pg_params)
        conns.append(conn)
        with conn.cursor() as cr:
            cr.execute(schema)
        conn.commit()
        return conn

    yield make
    for conn in conns:
        conn.close()


@pytest.fixture
def made(pg_params, scratch_db, tmp_path):
    """A verified backup of a small filled database and filestore (engine.backup.Backup)."""
    from backup_helpers import STAMP, fill, write_tree

    from engine import backup

    source = fill(pg_params, scratch_db())
    return backup.backup(pg_params, source, str(write_tree(tmp_path / "fs")),
                         str(tmp_path / "b"), STAMP)
