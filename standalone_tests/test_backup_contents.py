"""What a backup records of its dump (rows, modules, server version), read in the dump's
own snapshot: a restore of the dump holds exactly those rows."""

import psycopg2
import pytest
from backup_helpers import MODULES, STAMP, counts_of, fill, new_name, run, write_tree

from engine import backup, pg


@pytest.fixture
def source(pg_params, scratch_db):
    return fill(pg_params, scratch_db())


def test_backup_records_rows_modules_and_server_version(pg_params, source, tmp_path):
    made = backup.backup(pg_params, source, str(write_tree(tmp_path / "fs")),
                         str(tmp_path / "b"), STAMP)
    assert made.row_counts == counts_of(pg_params, source)
    assert made.row_counts["public.res_partner"] == 250
    assert made.row_counts['public.we"ird Table'] == 7
    assert made.modules == MODULES, "installed modules only, with their versions"
    conn = psycopg2.connect(dbname=source, **pg_params)
    try:
        major, minor = divmod(conn.server_version, 10000)
    finally:
        conn.close()
    assert made.pg_version == "%d.%d" % (major, minor)


def test_a_database_without_odoo_records_no_modules(pg_params, scratch_db, tmp_path):
    plain = scratch_db()
    run(pg_params, plain, "CREATE TABLE t (v int)", "INSERT INTO t VALUES (1), (2)")
    made = backup.backup(pg_params, plain, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    assert made.modules == {}
    assert made.row_counts == {"public.t": 2}

    odd = scratch_db()  # a table of that name without Odoo's columns is not Odoo's
    run(pg_params, odd, "CREATE TABLE ir_module_module (name varchar)")
    made = backup.backup(pg_params, odd, str(tmp_path / "fs"), str(tmp_path / "b2"), STAMP)
    assert made.modules == {}, "no latest_version/state columns: not read, dump not aborted"
    assert made.row_counts == {"public.ir_module_module": 0}


def test_rows_written_during_the_dump_are_neither_counted_nor_dumped(
        pg_params, scratch_db, source, tmp_path, monkeypatch):
    """A write committed after the counts, before pg_dump starts, is in neither: the counts
    describe the dump exactly.  Without the shared snapshot the dump would hold it."""
    real_dump = pg.dump
    snapshots = []

    def write_then_dump(params, name, path, snapshot=None):
        snapshots.append(snapshot)
        run(pg_params, source, "INSERT INTO res_partner (name) VALUES ('late')",
            "DELETE FROM empty_one", "INSERT INTO empty_one VALUES (1), (2)")
        return real_dump(params, name, path, snapshot=snapshot)

    monkeypatch.setattr(backup.pg, "dump", write_then_dump)
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    assert snapshots[0], "the dump was given the snapshot"
    assert counts_of(pg_params, source)["public.res_partner"] == 251, "the write committed"
    assert made.row_counts["public.res_partner"] == 250
    assert made.row_counts["public.empty_one"] == 0

    restored = new_name(scratch_db)
    backup.restore(pg_params, made, restored, str(tmp_path / "restored"))
    assert counts_of(pg_params, restored) == made.row_counts


def test_dump_refuses_a_malformed_snapshot_before_running_pg_dump(pg_params, source,
                                                                  tmp_path):
    path = tmp_path / "x.dump"
    with pytest.raises(pg.PgError, match="Invalid snapshot identifier"):
        pg.dump(pg_params, source, str(path), snapshot="1; rm -rf /")
    assert not path.exists()


def test_old_backups_without_contents_still_load(tmp_path):
    made = backup.Backup("a.dump", "a.tar.gz", 0, 1, 1, dump_sha256="x",
                         filestore_sha256="y", stamp=STAMP)
    assert (made.row_counts, made.modules, made.pg_version) == ({}, {}, "")
