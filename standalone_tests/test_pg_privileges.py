"""engine.pg with Odoo's role as in production: CREATEDB, no superuser.

A session of another role cannot be ended by Odoo's role: it must block
terminate_sessions and drop with a message naming it, while Odoo's own
sessions are ended.
"""

import uuid

import psycopg2
import pytest
from psycopg2 import sql
from saasdev import pgcluster

from engine import pg


def _role(params):
    with pg.maintenance(params) as conn, conn.cursor() as cr:
        cr.execute("""SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                             pg_has_role(r.oid, 'pg_signal_backend', 'MEMBER')
                        FROM pg_roles r WHERE r.rolname = current_user""")
        return cr.fetchone()


@pytest.fixture
def plain_role(bootstrap_params):
    """A second LOGIN role without privileges (created by the bootstrap superuser)."""
    name = "saas_pytest_other_%s" % uuid.uuid4().hex[:8]
    with pg.maintenance(bootstrap_params) as conn, conn.cursor() as cr:
        cr.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield dict(bootstrap_params, user=name)
    with pg.maintenance(bootstrap_params) as conn, conn.cursor() as cr:
        cr.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture(params=["bootstrap superuser", "plain role"])
def other_role(request, bootstrap_params):
    """Connection keywords of a role that is not Odoo's: a superuser, or a plain one."""
    if request.param == "plain role":
        return request.getfixturevalue("plain_role")
    return bootstrap_params


def test_private_cluster_gives_odoo_createdb_only(pg_params, bootstrap_params):
    assert pg_params["user"] == pgcluster.PRIVATE_ROLE
    assert bootstrap_params["user"] != pg_params["user"]
    superuser, createdb, createrole, signal_backend = _role(pg_params)
    assert (superuser, createdb, createrole, signal_backend) == (False, True, False, False)
    assert _role(bootstrap_params)[0] is True, "the tool's own role is the superuser"


def test_superuser_on_an_external_server_is_reported(pg_env, bootstrap_params):
    said = []
    pgcluster.check_server(pgcluster.PgServer(pg_env["PGHOST"], int(pg_env["PGPORT"]),
                                              bootstrap_params["user"]), said.append)
    assert len(said) == 1
    assert "superuser" in said[0]
    assert "CREATEDB" in said[0]
    said.clear()
    pgcluster.check_server(pgcluster.external_server(pg_env), said.append)
    assert said == [], "Odoo's role is not a superuser: nothing to report"


def test_other_roles_session_blocks_terminate_and_drop(pg_params, other_role, scratch_db):
    name = scratch_db()
    own = psycopg2.connect(dbname=name, **pg_params)
    other = psycopg2.connect(dbname=name, application_name="dba console", **other_role)
    with other.cursor() as cr:
        cr.execute("SELECT pg_backend_pid()")
        other_pid = cr.fetchone()[0]
    try:
        with pg.maintenance(pg_params) as conn:
            with pytest.raises(pg.PgError) as info:
                pg.terminate_sessions(conn, name, wait=0.5)
            message = str(info.value)
            assert name in message
            assert "pid %d (role %s, application dba console" % (
                other_pid, other_role["user"]) in message
            assert "may end only its own sessions" in message
            assert [row[0] for row in pg.sessions(conn, name)] == [other_pid], \
                "Odoo's own session was ended, the other role's was not"
            with pytest.raises(pg.PgError) as info:
                pg.drop(conn, name)
            message = str(info.value)
            assert "Cannot drop %s" % name in message
            assert "being accessed by other users" in message
            assert "pid %d (role %s" % (other_pid, other_role["user"]) in message
            assert pg.exists(conn, name)
        with pytest.raises(psycopg2.OperationalError), own.cursor() as cr:
            cr.execute("SELECT 1")
        with other.cursor() as cr:
            cr.execute("SELECT 1")  # still alive
    finally:
        other.close()
        own.close()
    with pg.maintenance(pg_params) as conn:
        assert pg.terminate_sessions(conn, name) == 0, "nothing left once it leaves"
        pg.drop(conn, name)
        assert not pg.exists(conn, name)


def test_own_sessions_are_ended_and_drop_needs_no_force(pg_params, scratch_db):
    name = scratch_db()
    sessions = [psycopg2.connect(dbname=name, **pg_params) for _ in range(2)]
    try:
        with pg.maintenance(pg_params) as conn:
            assert pg.terminate_sessions(conn, name) == 2
            assert pg.sessions(conn, name) == []
            again = psycopg2.connect(dbname=name, **pg_params)
            pg.drop(conn, name)  # ends it, then drops
            assert not pg.exists(conn, name)
        again.close()
    finally:
        for session in sessions:
            session.close()
