"""engine.usage against the real PostgreSQL: user counts, sizes, suspended and missing databases.

The databases are not Odoo databases: a ``res_users`` table with the
columns the count reads stands for one, with a row for every kind of user
the count must leave out.
"""

import psycopg2
import pytest

from engine import pg, usage

#: (id, login, active, share): what each row stands for.
USERS = [
    (1, "odoobot", True, False),        # SUPERUSER_ID, even when active
    (7, "__system__", True, False),     # the superuser found by its login
    (2, "admin", True, False),          # internal
    (3, "alice", True, False),          # internal
    (4, "former", False, False),        # internal but archived
    (5, "portal", True, True),          # portal user
    (6, "public", False, True),         # public user (archived, shared)
]


def run(params, database, *statements):
    conn = psycopg2.connect(dbname=database, **params)
    try:
        with conn, conn.cursor() as cr:
            for statement in statements:
                query, args = statement if isinstance(statement, tuple) else (statement, ())
                cr.execute(query, args)
    finally:
        conn.close()


def odoo_like(params, database, users=USERS):
    run(params, database,
        "CREATE TABLE res_users (id serial PRIMARY KEY, login varchar NOT NULL, "
        "active boolean, share boolean)",
        *[("INSERT INTO res_users (id, login, active, share) VALUES (%s, %s, %s, %s)", row)
          for row in users])


def count(params, database):
    conn = usage.connect_read_only(params, database)
    try:
        return usage.count_internal_users(conn)
    finally:
        conn.close()


def test_counts_only_active_internal_users_not_superuser_portal_or_public(pg_params,
                                                                           scratch_db):
    database = scratch_db()
    odoo_like(pg_params, database)
    assert count(pg_params, database) == 2


def test_null_share_counts_as_internal_and_null_active_as_archived(pg_params, scratch_db):
    database = scratch_db()
    odoo_like(pg_params, database, [(2, "admin", True, None), (3, "ghost", None, False)])
    assert count(pg_params, database) == 1


def test_table_without_share_column_is_refused(pg_params, scratch_db):
    database = scratch_db()
    run(pg_params, database, "CREATE TABLE res_users (id int, login varchar, active boolean)")
    with pytest.raises(pg.PgError, match="no share column"):
        count(pg_params, database)


def test_database_without_res_users_is_refused(pg_params, scratch_db):
    database = scratch_db()
    with pytest.raises(pg.PgError, match="not an Odoo database"):
        count(pg_params, database)


def test_read_only_connection_refuses_writes(pg_params, scratch_db):
    database = scratch_db()
    odoo_like(pg_params, database)
    conn = usage.connect_read_only(pg_params, database)
    try:
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), conn.cursor() as cr:
            cr.execute("DELETE FROM res_users")
        with conn.cursor() as cr:
            cr.execute("SHOW statement_timeout")
            assert cr.fetchone()[0] == "5s"
    finally:
        conn.close()
    assert count(pg_params, database) == 2


def test_database_sizes_in_one_query_leave_missing_names_out(pg_params, scratch_db):
    first, second = scratch_db(), scratch_db()
    missing = scratch_db(create=False)
    with pg.maintenance(pg_params) as conn:
        sizes = usage.database_sizes(conn, [first, second, missing])
        assert set(sizes) == {first, second}
        assert sizes[first] == pg.size(conn, first)
        assert sizes[second] > 1_000_000
        assert usage.database_sizes(conn, []) == {}


def test_storage_bytes_adds_database_and_filestore_treating_none_as_zero():
    assert usage.Usage("x", database_bytes=10, filestore_bytes=5).storage_bytes == 15
    assert usage.Usage("x", database_bytes=None, filestore_bytes=5).storage_bytes == 5


def make_filestore(data_dir, database, files):
    root = data_dir / "filestore" / database
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return sum(len(content) for content in files.values())


def test_measure_reports_users_database_and_filestore(pg_params, scratch_db, tmp_path):
    database = scratch_db()
    odoo_like(pg_params, database)
    filestore_bytes = make_filestore(tmp_path, database, {"ab/ab12": b"a" * 3000,
                                                          "cd/cd34": b"b" * 700})
    measured = usage.measure(pg_params, [database], str(tmp_path))[database]
    assert measured.error is None
    assert measured.users == 2
    assert measured.filestore_bytes == filestore_bytes == 3700
    assert measured.database_bytes > 1_000_000
    assert measured.storage_bytes == measured.database_bytes + 3700


def test_suspended_database_gets_sizes_but_no_user_count_and_no_error(pg_params, scratch_db,
                                                                       tmp_path):
    database = scratch_db()
    odoo_like(pg_params, database)
    make_filestore(tmp_path, database, {"ab/ab12": b"z" * 123})
    with pg.maintenance(pg_params) as conn:
        pg.allow_connections(conn, database, False)
    measured = usage.measure(pg_params, [database], str(tmp_path))[database]
    assert measured.error is None
    assert measured.users is None
    assert measured.database_bytes > 1_000_000
    assert measured.filestore_bytes == 123


def test_one_failing_database_does_not_stop_the_others(pg_params, scratch_db, tmp_path):
    good, not_odoo = scratch_db(), scratch_db()
    missing = scratch_db(create=False)
    odoo_like(pg_params, good)
    make_filestore(tmp_path, missing, {"ab/ab12": b"left over"})
    measured = usage.measure(pg_params, [missing, not_odoo, good], str(tmp_path))
    assert list(measured) == [missing, not_odoo, good]
    assert "does not exist" in measured[missing].error
    assert measured[missing].database_bytes is None
    assert measured[missing].filestore_bytes == len(b"left over")
    assert "not an Odoo database" in measured[not_odoo].error
    assert measured[not_odoo].users is None
    assert measured[not_odoo].database_bytes > 0, "its size is still reported"
    assert measured[good].error is None
    assert measured[good].users == 2


def test_count_users_false_connects_to_no_client_database(pg_params, scratch_db, tmp_path,
                                                          monkeypatch):
    database = scratch_db()

    def refuse(*args, **kwargs):
        raise AssertionError("no client connection expected")

    monkeypatch.setattr(usage, "connect_read_only", refuse)
    measured = usage.measure(pg_params, [database], str(tmp_path), count_users=False)
    assert measured[database].error is None
    assert measured[database].users is None
    assert measured[database].database_bytes > 0


def test_unreachable_server_sets_every_error_and_raises_nothing(pg_params, tmp_path):
    params = dict(pg_params, port=1)  # nothing listens there
    measured = usage.measure(params, ["a_db", "b_db"], str(tmp_path))
    assert all(m.error and m.error.startswith("PostgreSQL:") for m in measured.values())
    assert all(m.users is None and m.database_bytes is None for m in measured.values())
