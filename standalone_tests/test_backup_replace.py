"""engine.backup.replace: a live database and filestore replaced by a restore of a backup,
swapped in once restored; any failure before the swap leaves the live one as it was."""

import dataclasses
import os
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from backup_helpers import (
    FILES,
    STAMP,
    counts_of,
    database_exists,
    fill,
    new_name,
    read_files,
    run,
    write_tree,
)
from psycopg2 import sql

from engine import backup, pg

MARKER = "saas_manager:instance:42"


@dataclasses.dataclass
class Live:
    """A database serving, its filestore, a backup of it, and its state after the backup."""

    name: str
    filestore: Path
    made: backup.Backup
    counts: dict  # now, after the backup
    files: dict


@pytest.fixture
def live(pg_params, scratch_db, tmp_path):
    name = fill(pg_params, scratch_db())
    filestore = write_tree(tmp_path / "filestore" / name)
    made = backup.backup(pg_params, name, str(filestore), str(tmp_path / "b"), STAMP)
    run(pg_params, name, "INSERT INTO res_partner (name) VALUES ('after the backup')",
        "DELETE FROM ir_attachment")
    (filestore / "zz").mkdir()
    (filestore / "zz" / "new").write_bytes(b"written after the backup")
    with pg.maintenance(pg_params) as conn:
        pg.set_comment(conn, name, "before")
    return Live(name, filestore, made, counts_of(pg_params, name), read_files(filestore))


@pytest.fixture
def names(scratch_db):
    """``(staging, old)`` database names, dropped at the end whatever happens."""
    return new_name(scratch_db, "saas_pytest_staging"), new_name(scratch_db, "saas_pytest_old")


def state(pg_params, live):
    """What a client of the live database sees: rows, files, marker, connections."""
    with pg.maintenance(pg_params) as conn:
        flags = (pg.comment(conn, live.name), pg.connections_allowed(conn, live.name),
                 pg.is_template(conn, live.name))
    return counts_of(pg_params, live.name), read_files(live.filestore), flags


def assert_untouched(pg_params, live, names):
    assert state(pg_params, live) == (live.counts, live.files, ("before", True, False))
    for name in names:
        assert not database_exists(pg_params, name)
        assert not (live.filestore.parent / name).exists()


def test_the_live_database_is_replaced_and_its_sessions_ended(pg_params, live, names):
    session = psycopg2.connect(dbname=live.name, application_name="odoo worker", **pg_params)
    done = backup.replace(pg_params, live.made, live.name, str(live.filestore), *names,
                          comment=MARKER)
    assert counts_of(pg_params, live.name) == live.made.row_counts != live.counts
    assert read_files(live.filestore) == FILES
    with pg.maintenance(pg_params) as conn:
        assert pg.comment(conn, live.name) == MARKER
        assert pg.connections_allowed(conn, live.name)
        assert not pg.is_template(conn, live.name)
    assert done.row_counts == live.made.row_counts
    assert done.files == len(FILES)
    assert 0 < done.downtime < done.seconds
    assert done.leftovers == []
    for name in names:
        assert not database_exists(pg_params, name)
        assert not (live.filestore.parent / name).exists()
    with pytest.raises(psycopg2.OperationalError):
        session.cursor().execute("SELECT 1")  # ended for the swap
    session.close()


def test_refused_connections_and_the_template_flag_are_kept(pg_params, live, names):
    with pg.maintenance(pg_params) as conn:
        pg.allow_connections(conn, live.name, False)
        pg.mark_template(conn, live.name, True)
    backup.replace(pg_params, live.made, live.name, str(live.filestore), *names)
    with pg.maintenance(pg_params) as conn:
        assert not pg.connections_allowed(conn, live.name)
        assert pg.is_template(conn, live.name)
        assert pg.comment(conn, live.name) is None, "no comment given: the dump has none"
        pg.allow_connections(conn, live.name, True)
    assert counts_of(pg_params, live.name) == live.made.row_counts


def test_a_live_database_without_filestore_gets_the_backups(pg_params, live, names):
    for path in sorted(live.filestore.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    live.filestore.rmdir()
    backup.replace(pg_params, live.made, live.name, str(live.filestore), *names)
    assert read_files(live.filestore) == FILES


def test_a_backup_that_does_not_restore_leaves_the_live_database_serving(pg_params, live,
                                                                         names):
    path = Path(live.made.dump_path)
    path.write_bytes(path.read_bytes()[:-2000])  # damaged before it was recorded
    size, digest = backup.file_digest(str(path))
    made = dataclasses.replace(live.made, dump_bytes=size, dump_sha256=digest)
    with pytest.raises(backup.BackupError, match=r"pg_restore of .* failed"):
        backup.replace(pg_params, made, live.name, str(live.filestore), *names)
    assert_untouched(pg_params, live, names)


def test_a_damaged_backup_is_refused_before_anything(pg_params, live, names):
    Path(live.made.filestore_path).write_bytes(b"not an archive")
    with pytest.raises(backup.BackupError, match="Backup not usable"):
        backup.replace(pg_params, live.made, live.name, str(live.filestore), *names)
    assert_untouched(pg_params, live, names)


def test_a_restore_that_differs_from_the_record_is_not_swapped_in(pg_params, live, names):
    made = dataclasses.replace(live.made, row_counts=dict(live.made.row_counts,
                                                          **{"public.res_partner": 1}))
    with pytest.raises(backup.BackupError, match=r"differs from the backup's record: .*"
                                                 r"public.res_partner \(250 rows, 1 recorded"):
        backup.replace(pg_params, made, live.name, str(live.filestore), *names)
    assert_untouched(pg_params, live, names)


def test_a_failure_inside_the_swap_renames_everything_back(pg_params, live, names,
                                                           monkeypatch):
    def full_disk(plan, undo):
        assert database_exists(pg_params, plan.old_db), "renamed: mid-swap"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup, "_swap_dirs", full_disk)
    with pytest.raises(backup.BackupError, match="No space left on device. %s is as it was"
                       % live.name.replace(".", "\\.")):
        backup.replace(pg_params, live.made, live.name, str(live.filestore), *names)
    assert_untouched(pg_params, live, names)


def test_ctrl_c_right_after_the_second_rename_is_undone(pg_params, live, names,
                                                       monkeypatch):
    """Interrupted once the staging copy has the live name, before the next line: the undo
    looks at what is there, renames both back and drops the staging copy."""
    real_rename = backup._rename_free
    renamed = []

    def rename_then_interrupt(conn, name, new_name, wait):
        real_rename(conn, name, new_name, wait)
        renamed.append(name)
        if len(renamed) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(backup, "_rename_free", rename_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        backup.replace(pg_params, live.made, live.name, str(live.filestore), *names)
    assert renamed == [live.name, names[0]]
    assert_untouched(pg_params, live, names)


def test_a_superusers_session_makes_the_swap_undone_with_busy(pg_params, bootstrap_params,
                                                               live, names):
    dba = psycopg2.connect(dbname=live.name, application_name="dba console",
                           **bootstrap_params)
    try:
        started = time.monotonic()
        with pytest.raises(pg.BusyError, match="dba console.*%s is as it was" % live.name):
            backup.replace(pg_params, live.made, live.name, str(live.filestore), *names,
                           wait=0.5)
        assert time.monotonic() - started < 30
        with dba.cursor() as cr:
            cr.execute("SELECT 1")  # not ended: Odoo's role may not
        assert_untouched(pg_params, live, names)
    finally:
        dba.close()


@pytest.fixture
def member_role(pg_params, bootstrap_params):
    """Connection keywords of another LOGIN role, granted to Odoo's role (so Odoo's role
    may end its sessions, as PostgreSQL allows for roles whose privileges it has)."""
    name = "saas_pytest_member_%s" % uuid.uuid4().hex[:8]
    with pg.maintenance(bootstrap_params) as conn, conn.cursor() as cr:
        cr.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        cr.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(name),
                                                    sql.Identifier(pg_params["user"])))
    yield dict(bootstrap_params, user=name)
    with pg.maintenance(bootstrap_params) as conn, conn.cursor() as cr:
        cr.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_another_roles_session_that_may_be_ended_is_ended(pg_params, member_role, live,
                                                          names):
    session = psycopg2.connect(dbname=live.name, application_name="report tool",
                               **member_role)
    try:
        backup.replace(pg_params, live.made, live.name, str(live.filestore), *names,
                       comment=MARKER, wait=0.5)
        with pytest.raises(psycopg2.OperationalError):
            session.cursor().execute("SELECT 1")
    finally:
        session.close()
    assert counts_of(pg_params, live.name) == live.made.row_counts


def test_a_superusers_session_that_leaves_in_time_does_not_stop_the_swap(
        pg_params, bootstrap_params, live, names):
    dba = psycopg2.connect(dbname=live.name, **bootstrap_params)
    leaving = threading.Timer(0.5, dba.close)
    leaving.start()
    try:
        backup.replace(pg_params, live.made, live.name, str(live.filestore), *names,
                       comment=MARKER, wait=10)
    finally:
        leaving.cancel()
        dba.close()
    assert counts_of(pg_params, live.name) == live.made.row_counts


@pytest.mark.parametrize("staging, old, reason", [
    ("same", "saas_pytest_old_x", "must differ"),
    ("saas_pytest_s", "a" * 64, "63 bytes"),
    ("bad name", "saas_pytest_old_x", "Invalid staging database"),
    ("saas_pytest_s", 'x"; DROP DATABASE postgres; --', "Invalid old database"),
])
def test_names_are_checked_before_any_query(live, tmp_path, staging, old, reason):
    staging = live.name if staging == "same" else staging
    offline = {"host": "127.0.0.1", "port": 1}  # any query would fail to connect
    with pytest.raises(backup.BackupError, match=reason):
        backup.replace(offline, live.made, live.name, str(live.filestore), staging, old)


def test_existing_staging_or_old_targets_are_refused_and_kept(pg_params, scratch_db, live,
                                                              names):
    staging, old = names
    taken = live.filestore.parent / old
    taken.mkdir()
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        backup.replace(pg_params, live.made, live.name, str(live.filestore), staging, old)
    assert taken.is_dir()
    taken.rmdir()
    existing = scratch_db()
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        backup.replace(pg_params, live.made, live.name, str(live.filestore), staging, existing)
    assert database_exists(pg_params, existing)
    assert_untouched(pg_params, live, names)


def test_a_missing_live_database_is_refused(pg_params, scratch_db, live, names, tmp_path):
    missing = new_name(scratch_db)
    with pytest.raises(backup.BackupError, match="does not exist: nothing to replace"):
        backup.replace(pg_params, live.made, missing, str(tmp_path / "fs" / missing), *names)
    assert not os.path.exists(tmp_path / "fs")
