"""engine.backup against the real PostgreSQL: backup, read back, restore, and cleanup on failure."""

import hashlib
import io
import os
import stat
import tarfile
import uuid
from pathlib import Path

import pytest
from backup_helpers import FILES, STAMP, counts_of, fill, run

from engine import backup, pg


def write_tree(root, files=FILES):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty_dir").mkdir(parents=True)


def read_tree(root):
    """``({relative file: content}, {relative directory})`` under ``root``."""
    files, dirs = {}, set()
    for base, dirnames, names in os.walk(root):
        dirs.update(os.path.relpath(os.path.join(base, d), root) for d in dirnames)
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files, dirs


@pytest.fixture
def source(pg_params, scratch_db):
    """A database with rows in a few tables (one with a hostile name)."""
    return fill(pg_params, scratch_db(), modules=False)


def new_name(scratch_db, prefix="saas_pytest_restored"):
    """A database name that does not exist yet, dropped at the end of the test."""
    return scratch_db(create=False, name="%s_%s" % (prefix, uuid.uuid4().hex[:8]))


def test_backup_restores_the_same_rows_and_files(pg_params, scratch_db, source, tmp_path):
    filestore_dir = tmp_path / "filestore" / source
    write_tree(filestore_dir)
    backup_dir = tmp_path / "backups"
    made = backup.backup(pg_params, source, str(filestore_dir), str(backup_dir), STAMP)

    assert made.dump_path == str(backup_dir / ("%s-%s.dump" % (source, STAMP)))
    assert made.filestore_path == str(backup_dir / ("%s-%s.filestore.tar.gz" % (source, STAMP)))
    assert made.files == len(FILES)
    assert made.dump_bytes == os.path.getsize(made.dump_path) > 0
    assert made.filestore_bytes == os.path.getsize(made.filestore_path) > 0
    assert sorted(os.listdir(backup_dir)) == sorted(
        os.path.basename(p) for p in (made.dump_path, made.filestore_path))
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    for path in (made.dump_path, made.filestore_path):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, "customer data: owner only"

    # "=" in the name: pg_restore must read it as a name, not as connection settings.
    restored = new_name(scratch_db, "saas_pytest_re=stored")
    restored_dir = tmp_path / "filestore" / restored
    backup.restore(pg_params, made, restored, str(restored_dir))

    before = counts_of(pg_params, source)
    assert before == {"public.empty_one": 0, "public.ir_attachment": 2,
                      "public.res_partner": 250, 'public.we"ird Table': 7}
    assert counts_of(pg_params, restored) == before
    assert read_tree(restored_dir) == read_tree(filestore_dir)
    assert "empty_dir" in read_tree(restored_dir)[1]


def test_archive_names_members_relative_to_the_filestore(tmp_path):
    write_tree(tmp_path / "fs")
    tar_path = str(tmp_path / "fs.tar.gz")
    assert backup.archive_filestore(str(tmp_path / "fs"), tar_path) == len(FILES)
    with tarfile.open(tar_path) as tar:
        names = {m.name for m in tar.getmembers() if m.isreg()}
    assert names == set(FILES)
    assert not os.path.exists(tar_path + ".part")


def test_missing_filestore_gives_a_valid_empty_archive(tmp_path):
    tar_path = str(tmp_path / "empty.tar.gz")
    assert backup.archive_filestore(str(tmp_path / "absent"), tar_path) == 0
    assert backup.verify_archive(tar_path, 0) == 0
    with tarfile.open(tar_path) as tar:
        assert tar.getmembers() == []


def test_unreadable_directory_fails_the_archive_instead_of_skipping_it(tmp_path, monkeypatch):
    write_tree(tmp_path / "fs")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith(os.path.join("cd", "ef")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root reads through chmod 000
    tar_path = tmp_path / "fs.tar.gz"
    with pytest.raises(PermissionError):
        backup.archive_filestore(str(tmp_path / "fs"), str(tar_path))
    assert not tar_path.exists()
    assert not (tmp_path / "fs.tar.gz.part").exists()


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _not_gzip(path):
    path.write_bytes(b"this is not an archive")


@pytest.mark.parametrize("damage", [_flip_middle_byte, _truncate, _not_gzip])
def test_damaged_archive_fails_verification(tmp_path, damage):
    write_tree(tmp_path / "fs")
    tar_path = tmp_path / "fs.tar.gz"
    files = backup.archive_filestore(str(tmp_path / "fs"), str(tar_path))
    assert backup.verify_archive(str(tar_path), files) == files
    damage(tar_path)
    with pytest.raises(backup.BackupError, match="does not read back"):
        backup.verify_archive(str(tar_path), files)


def test_archive_with_fewer_files_than_archived_fails_verification(tmp_path):
    write_tree(tmp_path / "fs")
    tar_path = str(tmp_path / "fs.tar.gz")
    files = backup.archive_filestore(str(tmp_path / "fs"), tar_path)
    with pytest.raises(backup.BackupError, match="holds 4 files, 5 were archived"):
        backup.verify_archive(tar_path, files + 1)


def test_backup_of_missing_database_fails_and_leaves_no_files(pg_params, scratch_db, tmp_path):
    missing = scratch_db(create=False)
    write_tree(tmp_path / "fs")
    backup_dir = tmp_path / "backups"
    with pytest.raises(backup.BackupError, match="Backup of %s failed: .*does not exist" % missing):
        backup.backup(pg_params, missing, str(tmp_path / "fs"), str(backup_dir), STAMP)
    assert os.listdir(backup_dir) == []


def test_failed_archive_removes_the_dump_already_written(pg_params, source, tmp_path,
                                                         monkeypatch):
    write_tree(tmp_path / "fs")
    backup_dir = tmp_path / "backups"
    dumped = []
    real_dump = pg.dump

    def dump_then_check(*args, **kwargs):
        dumped.append(real_dump(*args, **kwargs))
        return dumped[-1]

    def broken_archive(src_dir, tar_path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup.pg, "dump", dump_then_check)
    monkeypatch.setattr(backup, "archive_filestore", broken_archive)
    with pytest.raises(backup.BackupError, match="No space left on device"):
        backup.backup(pg_params, source, str(tmp_path / "fs"), str(backup_dir), STAMP)
    assert len(dumped) == 1, "the dump was written before the archive failed"
    assert os.listdir(backup_dir) == []


def test_existing_backup_is_never_overwritten(pg_params, source, tmp_path):
    write_tree(tmp_path / "fs")
    backup_dir = tmp_path / "backups"
    first = backup.backup(pg_params, source, str(tmp_path / "fs"), str(backup_dir), STAMP)
    paths = [Path(first.dump_path), Path(first.filestore_path)]
    content = {p: p.read_bytes() for p in paths}
    run(pg_params, source, "INSERT INTO empty_one VALUES (1)")
    with pytest.raises(backup.BackupError, match="already exists"):
        backup.backup(pg_params, source, str(tmp_path / "fs"), str(backup_dir), STAMP)
    assert {p: p.read_bytes() for p in paths} == content
    assert len(os.listdir(backup_dir)) == 2


def test_restore_into_existing_database_is_refused(pg_params, scratch_db, source, tmp_path):
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    existing = scratch_db()
    run(pg_params, existing, "CREATE TABLE keep_me (v int)", "INSERT INTO keep_me VALUES (1)")
    with pytest.raises(backup.BackupError, match="already exists"):
        backup.restore(pg_params, made, existing, str(tmp_path / "restored_fs"))
    assert counts_of(pg_params, existing) == {"public.keep_me": 1}, "left as it was"
    assert not (tmp_path / "restored_fs").exists()


def test_restore_into_existing_filestore_is_refused(pg_params, scratch_db, source, tmp_path):
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    target = new_name(scratch_db)
    (tmp_path / "restored_fs").mkdir()
    (tmp_path / "restored_fs" / "theirs").write_bytes(b"not ours")
    with pytest.raises(backup.BackupError, match="already exists"):
        backup.restore(pg_params, made, target, str(tmp_path / "restored_fs"))
    with pg.maintenance(pg_params) as conn:
        assert not pg.exists(conn, target)
    assert (tmp_path / "restored_fs" / "theirs").read_bytes() == b"not ours"


@pytest.mark.parametrize("case", [
    ("filestore_path", "_truncate", "Restore of {target} failed"),
    # inside a file's content: only gzip's CRC, at the end of the stream, tells
    ("filestore_path", "_flip_middle_byte", "Restore of {target} failed: CRC check failed"),
    ("dump_path", "_flip_middle_byte", "pg_restore of .* into {target} failed"),
], ids=["filestore", "filestore-content", "dump"])
def test_failed_restore_drops_the_database_it_created(pg_params, scratch_db, source, tmp_path,
                                                      case):
    damaged, damage, reason = case
    write_tree(tmp_path / "fs")
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    globals()[damage](tmp_path / "b" / os.path.basename(getattr(made, damaged)))
    target = new_name(scratch_db)
    with pytest.raises(backup.BackupError, match=reason.format(target=target)):
        backup.restore(pg_params, made, target, str(tmp_path / "restored_fs"))
    with pg.maintenance(pg_params) as conn:
        assert not pg.exists(conn, target)
    assert not (tmp_path / "restored_fs").exists()


def _archive_with(tar_path, name):
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))


@pytest.mark.parametrize("member", ["../escaped", "ab/../../escaped", "/tmp/escaped"])
def test_archive_members_outside_the_filestore_are_refused(pg_params, scratch_db, source,
                                                           tmp_path, member):
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    _archive_with(made.filestore_path, member)
    target = new_name(scratch_db)
    restored_dir = tmp_path / "area" / "restored_fs"
    with pytest.raises(backup.BackupError, match="unsafe path"):
        backup.restore(pg_params, made, target, str(restored_dir))
    assert not restored_dir.exists()
    assert not (tmp_path / "area" / "escaped").exists()
    assert not os.path.exists("/tmp/escaped")
    with pg.maintenance(pg_params) as conn:
        assert not pg.exists(conn, target)


def test_row_counts_are_exact_per_public_table(pg_params, source):
    run(pg_params, source, "CREATE SCHEMA other", "CREATE TABLE other.hidden (v int)",
        "INSERT INTO other.hidden VALUES (1)", "CREATE VIEW partner_names AS "
        "SELECT name FROM res_partner", "DELETE FROM res_partner WHERE id > 200")
    counts = counts_of(pg_params, source)
    assert counts["public.res_partner"] == 200
    assert set(counts) == {"public.empty_one", "public.ir_attachment", "public.res_partner",
                           'public.we"ird Table'}, "only ordinary tables of schema public"


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_backup_carries_the_size_and_checksum_of_both_files(pg_params, source, tmp_path):
    write_tree(tmp_path / "fs")
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    assert made.stamp == STAMP
    assert made.dump_sha256 == sha256_of(made.dump_path)
    assert made.filestore_sha256 == sha256_of(made.filestore_path)
    assert made.dump_bytes == os.path.getsize(made.dump_path)
    assert made.filestore_bytes == os.path.getsize(made.filestore_path)
    backup.verify(made)  # intact: no error


def test_file_digest_reads_the_whole_file(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(os.urandom(3 * backup.CHUNK + 17))
    assert backup.file_digest(str(path)) == (3 * backup.CHUNK + 17, sha256_of(path))


def test_archive_checksum_is_computed_while_it_is_read_back(tmp_path, monkeypatch):
    """One read of the archive serves both the verification and the checksum."""
    write_tree(tmp_path / "fs")
    tar_path = str(tmp_path / "fs.tar.gz")
    files = backup.archive_filestore(str(tmp_path / "fs"), tar_path)
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        if str(path) == tar_path:
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    size, digest = backup._read_back_archive(tar_path, files)
    assert len(opened) == 1
    assert (size, digest) == (os.path.getsize(tar_path), sha256_of(tar_path))


@pytest.mark.parametrize("damaged", ["dump_path", "filestore_path"])
def test_a_corrupted_file_changes_its_checksum_and_fails_verify(pg_params, source, tmp_path,
                                                               damaged):
    write_tree(tmp_path / "fs")
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    path = Path(getattr(made, damaged))
    before = sha256_of(path)
    _flip_middle_byte(path)  # same size: only the checksum tells
    assert os.path.getsize(path) == getattr(made, damaged.replace("_path", "_bytes"))
    assert sha256_of(path) != before
    with pytest.raises(backup.BackupError, match="does not match its checksum"):
        backup.verify(made)
    backup.verify(made, checksums=False)  # sizes alone do not see it


@pytest.mark.parametrize("damage, reason", [
    (os.remove, "is missing"),
    (_truncate, r"has \d+ bytes, \d+ were recorded"),
], ids=["missing", "truncated"])
def test_verify_reports_missing_and_truncated_files(pg_params, source, tmp_path, damage,
                                                    reason):
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    damage(Path(made.dump_path))
    with pytest.raises(backup.BackupError, match="database dump .*" + reason):
        backup.verify(made, checksums=False)


def test_verify_refuses_a_backup_without_recorded_checksums(pg_params, source, tmp_path):
    made = backup.backup(pg_params, source, str(tmp_path / "fs"), str(tmp_path / "b"), STAMP)
    made.dump_sha256 = ""
    with pytest.raises(backup.BackupError, match="no recorded checksum"):
        backup.verify(made)
