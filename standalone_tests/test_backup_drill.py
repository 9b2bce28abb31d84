"""engine.backup.drill: a backup restored into a scratch copy, compared with what it
recorded, the copy always removed."""

import dataclasses
import os
from pathlib import Path

import psycopg2
import pytest
from backup_helpers import FILES, database_exists, new_name

from engine import backup


@pytest.fixture
def scratch(scratch_db, tmp_path):
    """``(scratch database, scratch directory)``: neither exists."""
    return new_name(scratch_db, "saas_pytest_drill"), str(tmp_path / "drill_fs")


def assert_removed(pg_params, scratch):
    name, directory = scratch
    assert not database_exists(pg_params, name)
    assert not os.path.lexists(directory)


def refresh_checksums(made):
    """``made`` with the sizes and checksums of its files as they are now: a backup damaged
    before it was recorded, which only a restore can tell."""
    dump_bytes, dump_sha = backup.file_digest(made.dump_path)
    tar_bytes, tar_sha = backup.file_digest(made.filestore_path)
    return dataclasses.replace(made, dump_bytes=dump_bytes, dump_sha256=dump_sha,
                               filestore_bytes=tar_bytes, filestore_sha256=tar_sha)


def test_a_good_backup_passes_and_the_scratch_copy_is_removed(pg_params, made, scratch):
    report = backup.drill(pg_params, made, *scratch)
    assert report.ok, report.problems
    assert report.problems == [] and report.notes == []
    assert report.tables == len(made.row_counts) == 5
    assert report.rows == sum(made.row_counts.values()) == 250 + 2 + 7 + 0 + 4
    assert report.files == made.files == len(FILES)
    assert report.seconds > 0
    assert_removed(pg_params, scratch)


def test_a_truncated_dump_is_reported_without_restoring(pg_params, made, scratch,
                                                        monkeypatch):
    path = Path(made.dump_path)
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setattr(backup, "_create_database", lambda *args: pytest.fail("restored"))
    report = backup.drill(pg_params, made, *scratch)
    assert not report.ok
    assert report.problems == ["the database dump %s has %d bytes, %d were recorded" % (
        made.dump_path, made.dump_bytes - 100, made.dump_bytes)]
    assert (report.tables, report.rows, report.files) == (0, 0, 0)
    assert_removed(pg_params, scratch)


def test_a_flipped_byte_in_the_archive_is_reported(pg_params, made, scratch):
    path = Path(made.filestore_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = backup.drill(pg_params, made, *scratch)
    assert not report.ok
    assert len(report.problems) == 1
    assert "filestore archive" in report.problems[0]
    assert "does not match its checksum" in report.problems[0]
    assert_removed(pg_params, scratch)


def test_a_dump_that_does_not_restore_is_reported_and_the_copy_dropped(pg_params, made,
                                                                        scratch):
    path = Path(made.dump_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # damaged before its checksum was taken
    report = backup.drill(pg_params, refresh_checksums(made), *scratch)
    assert not report.ok
    assert any("pg_restore of %s into %s failed" % (made.dump_path, scratch[0]) in problem
               for problem in report.problems), report.problems
    assert_removed(pg_params, scratch)


def test_an_archive_that_does_not_restore_is_reported(pg_params, made, scratch):
    path = Path(made.filestore_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = backup.drill(pg_params, refresh_checksums(made), *scratch)
    assert not report.ok
    assert "The filestore archive %s does not restore" % made.filestore_path in \
        report.problems[0]
    assert_removed(pg_params, scratch)


def test_other_row_counts_and_files_are_listed_readably(pg_params, made, scratch):
    recorded = dict(made.row_counts)
    recorded["public.res_partner"] = 249
    del recorded["public.empty_one"]
    recorded.update({"public.gone_%02d" % i: 1 for i in range(15)})
    report = backup.drill(pg_params, dataclasses.replace(made, row_counts=recorded,
                                                         files=made.files + 1), *scratch)
    assert not report.ok
    missing, extra, different, files = report.problems
    assert missing == ("15 tables of the backup are missing: %s and 5 more"
                       % ", ".join("public.gone_%02d" % i for i in range(10)))
    assert extra == "1 tables are not in the backup's record: public.empty_one"
    assert different == "1 tables have other row counts: public.res_partner (250 rows, " \
                        "249 recorded)"
    assert files == "The filestore holds 4 files, the backup recorded 5."
    assert_removed(pg_params, scratch)


def test_a_backup_without_recorded_counts_passes_with_a_note(pg_params, made, scratch):
    report = backup.drill(pg_params, dataclasses.replace(made, row_counts={}), *scratch)
    assert report.ok
    assert report.notes == ["The backup has no recorded row counts (taken before they were "
                            "recorded): 5 tables restored, not compared."]
    assert report.tables == 5
    assert_removed(pg_params, scratch)


def test_ctrl_c_during_the_drill_still_removes_the_scratch_copy(pg_params, made, scratch,
                                                                monkeypatch):
    real_extract = backup._extract

    def extract_then_interrupt(tar_path, dest_dir):
        real_extract(tar_path, dest_dir)
        assert database_exists(pg_params, scratch[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(backup, "_extract", extract_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        backup.drill(pg_params, made, *scratch)
    assert_removed(pg_params, scratch)


def test_existing_scratch_targets_are_refused_and_kept(pg_params, scratch_db, made, tmp_path):
    existing = scratch_db()
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        backup.drill(pg_params, made, existing, str(tmp_path / "new_dir"))
    assert database_exists(pg_params, existing)
    kept = tmp_path / "kept"
    kept.mkdir()
    name = new_name(scratch_db)
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        backup.drill(pg_params, made, name, str(kept))
    assert kept.is_dir()
    assert not database_exists(pg_params, name)


@pytest.mark.parametrize("name", ["", "bad name", "x" * 64, "-x", "a;b", "é"])
def test_invalid_scratch_names_are_refused_before_any_query(pg_params, made, tmp_path, name):
    with pytest.raises(backup.BackupError, match="Invalid scratch database"):
        backup.drill(dict(pg_params, port=1), made, name, str(tmp_path / "d"))


def test_an_unreachable_server_is_raised_not_reported(pg_params, made, scratch):
    with pytest.raises(psycopg2.OperationalError):
        backup.drill(dict(pg_params, host="127.0.0.1", port=1), made, *scratch)
    assert_removed(pg_params, scratch)
