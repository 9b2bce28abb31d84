"""engine.pg against the real PostgreSQL: clone, drop, size, sessions, locks, quoting."""

import psycopg2
import pytest
from psycopg2 import sql

from engine import pg

HOSTILE = ['we"ird', "semi;colon", "drop database postgres; --", "Mixed Case",
           "dollar$name", "x'y"]


def test_clone_owner_size_and_drop(pg_params, scratch_db):
    template = scratch_db()
    with psycopg2.connect(dbname=template, **pg_params) as conn, conn.cursor() as cr:
        cr.execute("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('from template')")
    conn.close()
    target = scratch_db(create=False)
    with pg.maintenance(pg_params) as conn:
        for strategy in pg.STRATEGIES:
            name = target + strategy.lower()[:4]
            scratch_db(name=name, create=False)
            pg.clone(conn, template, name, owner_role=pg_params["user"], strategy=strategy)
            assert pg.exists(conn, name)
            assert pg.owner(conn, name) == pg_params["user"]
            assert pg.size(conn, name) > 1_000_000
            with psycopg2.connect(dbname=name, **pg_params) as clone, clone.cursor() as cr:
                cr.execute("SELECT v FROM marker")
                assert cr.fetchone()[0] == "from template"
            clone.close()
            pg.drop(conn, name)
            assert not pg.exists(conn, name)
            assert pg.size(conn, name) is None
        pg.drop(conn, target)  # absent: no error


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_quoted_not_executed(pg_params, scratch_db, name):
    template = scratch_db()
    scratch_db(name=name, create=False)
    with pg.maintenance(pg_params) as conn:
        pg.clone(conn, template, name)
        assert pg.exists(conn, name)
        assert pg.exists(conn, "postgres")
        pg.allow_connections(conn, name, False)
        pg.mark_template(conn, name, True)
        pg.mark_template(conn, name, False)
        pg.drop(conn, name)
        assert not pg.exists(conn, name)


def test_busy_template_is_refused_until_sessions_end(pg_params, scratch_db):
    template = scratch_db()
    target = scratch_db(create=False)
    session = psycopg2.connect(dbname=template, **pg_params)
    with pg.maintenance(pg_params) as conn:
        with pytest.raises(pg.PgError, match="being accessed by other users"):
            pg.clone(conn, template, target)
        assert not pg.exists(conn, target)
        assert pg.terminate_sessions(conn, template) >= 1  # ours (+ autovacuum, maybe)
        pg.clone(conn, template, target)
        assert pg.exists(conn, target)
    with pytest.raises(psycopg2.OperationalError), session.cursor() as cr:
        cr.execute("SELECT 1")
    session.close()


def test_locked_template_refuses_connections_but_clones(pg_params, scratch_db):
    template = scratch_db()
    target = scratch_db(create=False)
    with pg.maintenance(pg_params) as conn:
        pg.allow_connections(conn, template, False)
        pg.mark_template(conn, template, True)
        assert not pg.connections_allowed(conn, template)
        with pytest.raises(psycopg2.OperationalError, match="not currently accepting"):
            psycopg2.connect(dbname=template, **pg_params)
        pg.clone(conn, template, target)
        assert pg.exists(conn, target)
        pg.mark_template(conn, template, False)
        pg.allow_connections(conn, template, True)
        assert pg.connections_allowed(conn, template)


def test_clone_onto_existing_name_fails_and_keeps_it(pg_params, scratch_db):
    template = scratch_db()
    existing = scratch_db()
    with pg.maintenance(pg_params) as conn:
        with pytest.raises(pg.PgError, match="already exists"):
            pg.clone(conn, template, existing)
        assert pg.exists(conn, existing)


def test_unknown_strategy(pg_params):
    with pg.maintenance(pg_params) as conn, pytest.raises(pg.PgError, match="strategy"):
        pg.clone(conn, "a", "b", strategy="RSYNC")


def test_hidden_clone_and_owner_marker(pg_params, scratch_db):
    template = scratch_db()
    target = scratch_db(create=False)
    with pg.maintenance(pg_params) as conn:
        pg.clone(conn, template, target, hidden=True)
        with conn.cursor() as cr:
            cr.execute("SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
                       (target,))
            assert cr.fetchone() == (True, True), "invisible to Odoo, reachable by its owner"
        assert pg.comment(conn, target) is None
        pg.set_comment(conn, target, "saas_manager instance 7 of it's \"manager\"")
        assert pg.comment(conn, target) == "saas_manager instance 7 of it's \"manager\""
        pg.drop(conn, target)  # a template flag does not prevent our own drop
        assert not pg.exists(conn, target)


def test_commented_lists_own_databases_by_literal_comment_prefix(pg_params, scratch_db):
    prefix = "saas_pytest marker %s " % scratch_db(create=False)  # unique to this test
    marked, hostile, other, wildcard = (scratch_db(), scratch_db(name='orph"an; x\'y'),
                                        scratch_db(), scratch_db())
    with pg.maintenance(pg_params) as conn:
        pg.set_comment(conn, marked, prefix + "1 of mgr")
        pg.set_comment(conn, hostile, prefix + "2 of mgr")
        pg.set_comment(conn, other, "someone else " + prefix)
        # '_' and '%' would match anything in a LIKE pattern; here they are plain text.
        pg.set_comment(conn, wildcard, prefix.replace(" ", "_") + "3 of mgr")
        rows = pg.commented(conn, prefix)
        assert [(name, text) for name, text, _size in rows] == sorted(
            [(marked, prefix + "1 of mgr"), (hostile, prefix + "2 of mgr")])
        assert all(size > 1_000_000 for _name, _text, size in rows)
        assert pg.commented(conn, prefix + "%") == []
        for bad in ("", None, 3):
            with pytest.raises(pg.PgError, match="prefix is required"):
                pg.commented(conn, bad)


def test_commented_ignores_another_roles_databases(pg_params, bootstrap_params, scratch_db):
    prefix = "saas_pytest other role %s " % scratch_db(create=False)
    name = scratch_db(create=False)
    with pg.maintenance(bootstrap_params) as conn:
        conn.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            pg.set_comment(conn, name, prefix + "1 of mgr")
            assert [row[0] for row in pg.commented(conn, prefix)] == [name]  # its owner's
            with pg.maintenance(pg_params) as mine:
                assert pg.commented(mine, prefix) == []
        finally:
            pg.drop(conn, name)
