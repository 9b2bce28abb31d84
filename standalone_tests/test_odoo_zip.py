"""engine.odoo_zip: Odoo's backup zip written from a backup, read as Odoo's restore_db reads
it, and uploaded zips checked before anything is created from them."""

import json
import os
import shutil
import stat
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path

import pytest
from backup_helpers import (
    FILES,
    MODULES,
    counts_of,
    database_exists,
    new_name,
    read_files,
)

from engine import backup, odoo_zip

VERSION_INFO = (18, 0, 0, "final", 0, "")
SIMPLE_DUMP = b"CREATE TABLE t (v int);\nINSERT INTO t VALUES (1), (2);\n"


@pytest.fixture
def exported(pg_params, made, tmp_path):
    """``(zip path, manifest)`` of ``made`` exported."""
    manifest = odoo_zip.odoo_manifest(made, "acme", VERSION_INFO)
    path = str(tmp_path / "acme.zip")
    odoo_zip.export_zip(pg_params, made, path, manifest)
    return path, manifest


@pytest.fixture
def target(scratch_db, tmp_path):
    """``(database, filestore directory)`` for an import: neither exists."""
    return new_name(scratch_db, "saas_pytest_import"), str(tmp_path / "filestore" / "imported")


def make_zip(path, members):
    """A zip of ``members`` (name or ZipInfo -> bytes), duplicates allowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return str(path)


def assert_nothing_created(pg_params, target):
    database, directory = target
    assert not database_exists(pg_params, database)
    assert not os.path.lexists(directory)


# -- export ------------------------------------------------------------------------------
def test_export_writes_odoos_layout(pg_params, made, tmp_path):
    manifest = odoo_zip.odoo_manifest(made, "acme", VERSION_INFO)
    path = tmp_path / "out" / "acme.zip"
    path.parent.mkdir()
    size = odoo_zip.export_zip(pg_params, made, str(path), manifest)
    assert size == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["acme.zip"], "no .part left"
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names[:2] == ["dump.sql", "manifest.json"], "dump.sql first, as Odoo writes"
        assert sorted(names[2:]) == sorted("filestore/" + name for name in FILES)
        assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
        assert archive.read("manifest.json").decode() == json.dumps(manifest, indent=4)
        for name, content in FILES.items():
            assert archive.read("filestore/" + name) == content
        dump = archive.read("dump.sql")
    assert b"CREATE TABLE public.res_partner" in dump
    assert b"OWNER TO" not in dump, "--no-owner, as Odoo dumps"
    assert manifest["modules"] == MODULES
    assert manifest["major_version"] == "18.0"
    assert manifest["pg_version"] == made.pg_version


def test_odoos_restore_steps_accept_the_export(pg_params, made, exported, scratch_db,
                                               tmp_path):
    """What odoo.service.db.restore_db does with a zip, without Odoo: extract dump.sql and
    the filestore members, run ``psql -q -f dump.sql`` (errors ignored, as Odoo does: so
    none may occur), move the filestore in place."""
    path, _manifest = exported
    database = new_name(scratch_db, "saas_pytest_odoo")
    backup._create_database(pg_params, database)
    dump_dir = tmp_path / "odoo_restore"
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path, "r") as archive:
        filestore = [m for m in archive.namelist() if m.startswith("filestore/")]
        archive.extractall(dump_dir, ["dump.sql", *filestore])
    done = subprocess.run(["psql", "--dbname=" + database, "-q", "-f",
                           str(dump_dir / "dump.sql")], capture_output=True, text=True,
                          check=False, env=dict(os.environ, PGHOST=pg_params["host"],
                                                PGPORT=str(pg_params["port"]),
                                                PGUSER=pg_params["user"]))
    assert done.returncode == 0
    assert "ERROR" not in done.stderr, done.stderr
    destination = tmp_path / "filestore" / database
    destination.parent.mkdir()
    shutil.move(str(dump_dir / "filestore"), str(destination))
    assert counts_of(pg_params, database) == made.row_counts
    assert read_files(destination) == FILES


def test_export_refuses_to_overwrite(pg_params, made, tmp_path):
    path = tmp_path / "acme.zip"
    path.write_bytes(b"earlier export")
    with pytest.raises(backup.BackupExistsError, match="never overwritten"):
        odoo_zip.export_zip(pg_params, made, str(path), {})
    part = tmp_path / "other.zip.part"
    part.write_bytes(b"being written")
    with pytest.raises(backup.BackupExistsError, match="interrupted"):
        odoo_zip.export_zip(pg_params, made, str(tmp_path / "other.zip"), {})
    assert path.read_bytes() == b"earlier export"
    assert part.read_bytes() == b"being written"


def test_a_failed_export_leaves_no_file(pg_params, made, tmp_path):
    archive = Path(made.filestore_path)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside a file's content: only gzip's CRC tells
    archive.write_bytes(bytes(data))
    size, digest = backup.file_digest(str(archive))
    made.filestore_bytes, made.filestore_sha256 = size, digest
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(backup.BackupError, match=r"Export of .* failed: CRC check failed"):
        odoo_zip.export_zip(pg_params, made, str(out / "acme.zip"), {})
    assert os.listdir(out) == []


def test_a_damaged_backup_is_not_exported(pg_params, made, tmp_path):
    Path(made.dump_path).write_bytes(b"damaged")
    with pytest.raises(backup.BackupError, match="Backup not usable"):
        odoo_zip.export_zip(pg_params, made, str(tmp_path / "acme.zip"), {})
    assert not (tmp_path / "acme.zip").exists()
    assert not (tmp_path / "acme.zip.part").exists()


# -- import ------------------------------------------------------------------------------
def test_export_then_import_gives_the_same_rows_and_files(pg_params, made, exported, target):
    path, manifest = exported
    summary = odoo_zip.inspect(path)
    assert summary.manifest == manifest
    assert summary.files == len(FILES)
    assert summary.dump_bytes > 0
    assert summary.total_bytes >= summary.dump_bytes + sum(map(len, FILES.values()))
    imported = odoo_zip.import_zip(pg_params, path, *target)
    assert imported.row_counts == made.row_counts == counts_of(pg_params, target[0])
    assert imported.files == len(FILES)
    assert imported.manifest == manifest
    assert read_files(target[1]) == FILES


def test_what_odoo_18_dumps_need_restores_as_a_non_superuser(pg_params, tmp_path, target):
    """A real Odoo 18 dump creates pg_trgm, comments on it and indexes with it; it turns
    row security off.  Odoo's role, owning the new database, may do all of that."""
    dump = b"""\\restrict AbC123
-- Dumped by pg_dump
SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SET row_security = off;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';
CREATE TABLE public.mail_blacklist (id integer NOT NULL, email character varying);
COPY public.mail_blacklist (id, email) FROM stdin;
1\ta@example.com
2\t\\\\restrict AbC123
\\.
CREATE INDEX mail_blacklist__email_index ON public.mail_blacklist
    USING gin (email public.gin_trgm_ops);
\\unrestrict AbC123
"""
    path = make_zip(tmp_path / "odoo.zip", [("dump.sql", dump),
                                           ("manifest.json", json.dumps({"version": "18.0"}))])
    imported = odoo_zip.import_zip(pg_params, path, *target)
    assert imported.row_counts == {"public.mail_blacklist": 2}
    assert imported.files == 0
    assert os.path.isdir(target[1])


@pytest.mark.parametrize("dump, reason", [
    (SIMPLE_DUMP + b"SELECT * FROM missing_table;\n", 'relation "missing_table" does not exist'),
    (SIMPLE_DUMP + b"ALTER TABLE t OWNER TO saas_bootstrap;\n", "must be"),
    (b"SET transaction_timeout = 0;\n" + SIMPLE_DUMP, "unrecognized configuration parameter"),
], ids=["sql-error", "other-owner", "newer-pg-setting"])
def test_a_dump_that_fails_leaves_nothing(pg_params, tmp_path, target, dump, reason):
    path = make_zip(tmp_path / "bad.zip", [("dump.sql", dump), ("filestore/ab/x", b"x"),
                                          ("manifest.json", '{"pg_version": "17.2"}')])
    with pytest.raises(odoo_zip.ZipRejected, match="dump.sql does not restore \\(the dump "
                                                   "was made on PostgreSQL 17.2\\): .*" + reason):
        odoo_zip.import_zip(pg_params, path, *target)
    assert_nothing_created(pg_params, target)


@pytest.mark.parametrize("dump", [
    b"CREATE TABLE t (v int);\n\\! touch {marker}\n",
    b"\\restrict K1\nCREATE TABLE t (v int);\n\\unrestrict K1\n\\! touch {marker}\n",
    b"CREATE TABLE t (v int);\n\\o {marker}\nSELECT 1;\n",
    b"\\unrestrict K1\n\\! touch {marker}\n",
], ids=["shell", "after-its-own-unrestrict", "write-file", "guessed-key"])
def test_backslash_commands_of_an_uploaded_dump_never_run(pg_params, tmp_path, target, dump):
    marker = tmp_path / "pwned"
    path = make_zip(tmp_path / "evil.zip", [("dump.sql", dump.replace(
        b"{marker}", str(marker).encode()))])
    with pytest.raises(odoo_zip.ZipRejected, match=r"backslash commands are restricted|"
                                                   r"wrong key"):
        odoo_zip.import_zip(pg_params, path, *target)
    assert not marker.exists()
    assert_nothing_created(pg_params, target)


def _symlink():
    info = zipfile.ZipInfo("filestore/ab/link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _fifo():
    info = zipfile.ZipInfo("filestore/ab/fifo")
    info.create_system = 3
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    return info


DUMP = ("dump.sql", SIMPLE_DUMP)


@pytest.mark.parametrize("members, reason", [
    ([("filestore/ab/x", b"x")], "no dump.sql"),
    ([DUMP, ("../evil", b"x")], "unsafe name '../evil': an empty, '.' or '..' path"),
    ([DUMP, ("filestore/../../evil", b"x")], "unsafe name .*'\\.\\.' path component"),
    ([DUMP, ("/etc/evil", b"x")], "unsafe name '/etc/evil': an absolute path"),
    ([DUMP, ("C:/evil", b"x")], "an absolute path"),
    ([DUMP, ("filestore\\evil", b"x")], "a backslash"),
    ([DUMP, ("filestore/a\nb", b"x")], "control characters"),
    ([DUMP, ("filestore/" + "a" * 256, b"x")], "a component longer than 255 bytes"),
    ([DUMP, ("filestore/" + "a/" * 600 + "x", b"x")], "longer than 1024 bytes"),
    ([DUMP, ("filestore//x", b"x")], "an empty"),
    ([DUMP, ("evil.sh", b"x")], "holds only dump.sql, manifest.json and filestore/"),
    ([DUMP, ("__MACOSX/._dump.sql", b"x")], "holds only dump.sql"),
    ([DUMP, (_symlink(), b"../../../etc/passwd")], "is a symbolic link"),
    ([DUMP, (_fifo(), b"")], "is a special file"),
    ([DUMP, ("filestore/ab/x", b"1"), ("filestore/ab/x", b"2")], "holds 'filestore/ab/x' twice"),
    ([DUMP, ("filestore/ab", b"1"), ("filestore/ab/x", b"2")], "both as a file and as a dir"),
    ([DUMP, ("manifest.json", b"{not json")], "manifest.json is not valid JSON"),
    ([DUMP, ("manifest.json", b"[18]")], "manifest.json is not a JSON object"),
    ([DUMP, ("manifest.json", json.dumps({"major_version": "17.0", "version": "18.0"}))],
     "made by Odoo 17.0; this server runs Odoo 18.0. Restore it on Odoo 17.0 and "
     "upgrade it to 18.0 first"),
    ([DUMP, ("manifest.json", json.dumps({"version_info": ["saas~18", 1, 0, "final", 0]}))],
     "made by Odoo saas~18.1;"),
    ([DUMP, ("manifest.json", json.dumps({"version": "19.0"}))], "made by Odoo 19.0;"),
], ids=lambda value: None if isinstance(value, list) else value[:30])
def test_unacceptable_zips_are_refused_before_anything_is_created(pg_params, tmp_path,
                                                                  target, members, reason):
    path = make_zip(tmp_path / "upload.zip", members)
    with pytest.raises(odoo_zip.ZipRejected, match=reason):
        odoo_zip.import_zip(pg_params, path, *target)
    assert_nothing_created(pg_params, target)


def test_a_manifest_without_version_and_directory_entries_are_accepted(pg_params, tmp_path,
                                                                        target):
    path = make_zip(tmp_path / "upload.zip", [
        DUMP, ("manifest.json", "{}"), ("filestore/", b""), ("filestore/ab/", b""),
        ("filestore/ab/x", b"content"), ("filestore/empty/", b"")])
    imported = odoo_zip.import_zip(pg_params, path, *target)
    assert imported.manifest == {}
    assert imported.files == 1
    assert read_files(target[1]) == {"ab/x": b"content"}
    assert os.path.isdir(os.path.join(target[1], "empty"))


def test_an_encrypted_member_is_refused(pg_params, tmp_path, target):
    path = make_zip(tmp_path / "secret.zip", [DUMP, ("filestore/ab/secret", b"x")])
    patch_central(path, "filestore/ab/secret", 8, "<H", lambda flags: flags | 0x1)
    with pytest.raises(odoo_zip.ZipRejected, match="'filestore/ab/secret' is encrypted"):
        odoo_zip.import_zip(pg_params, path, *target)
    assert_nothing_created(pg_params, target)


def test_a_file_that_is_not_a_zip_is_refused(pg_params, tmp_path, target):
    path = tmp_path / "upload.zip"
    path.write_bytes(b"-- PostgreSQL database dump\nSELECT 1;\n")
    with pytest.raises(odoo_zip.ZipRejected, match="not a zip file"):
        odoo_zip.import_zip(pg_params, str(path), *target)
    assert_nothing_created(pg_params, target)


def test_a_zip_bomb_is_refused_by_ratio_size_and_count(pg_params, tmp_path, target):
    bomb = make_zip(tmp_path / "bomb.zip", [DUMP, ("filestore/ab/zeros", bytes(2 << 20))])
    with pytest.raises(odoo_zip.ZipRejected, match=r"expands [0-9]+ times .* zip bomb"):
        odoo_zip.import_zip(pg_params, bomb, *target)
    with pytest.raises(odoo_zip.ZipRejected, match="expands to more than 100000 bytes"):
        odoo_zip.inspect(bomb, odoo_zip.Limits(max_total_bytes=100_000, max_ratio=10 ** 6))
    with pytest.raises(odoo_zip.ZipRejected, match="holds 2 members, at most 1"):
        odoo_zip.inspect(bomb, odoo_zip.Limits(max_members=1))
    small = odoo_zip.Limits(ratio_from_bytes=10 ** 7)  # below it, any ratio is fine
    assert odoo_zip.inspect(bomb, small).total_bytes == len(SIMPLE_DUMP) + (2 << 20)
    assert_nothing_created(pg_params, target)


def patch_central(path, name, offset, fmt, change):
    """Change the field at ``offset`` of the central directory entry of ``name``
    (``struct`` format ``fmt``): ``change(value)`` replaces its value."""
    data = bytearray(Path(path).read_bytes())
    entry = data.index(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + len(name)] != name.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into(fmt, data, entry + offset,
                     change(struct.unpack_from(fmt, data, entry + offset)[0]))
    Path(path).write_bytes(bytes(data))


def test_a_member_whose_header_lies_about_its_size_is_caught(pg_params, tmp_path, target):
    path = make_zip(tmp_path / "liar.zip", [DUMP, ("filestore/ab/liar", bytes(5 << 20))])
    patch_central(path, "filestore/ab/liar", 24, "<I", lambda size: 1000)
    summary = odoo_zip.inspect(path)  # the lie passes the directory's checks...
    assert summary.total_bytes == len(SIMPLE_DUMP) + 1000
    with pytest.raises(odoo_zip.ZipRejected, match="The zip is damaged: Bad CRC-32"):
        odoo_zip.import_zip(pg_params, path, *target)  # ...not the extraction
    assert_nothing_created(pg_params, target)


def test_a_nul_in_a_member_name_is_refused(pg_params, tmp_path, target):
    path = make_zip(tmp_path / "nul.zip", [DUMP, ("filestore/aQb/../../x", b"x")])
    data = Path(path).read_bytes().replace(b"filestore/aQb", b"filestore/a\0b")
    Path(path).write_bytes(data)
    with pytest.raises(odoo_zip.ZipRejected, match="NUL or control characters"):
        odoo_zip.import_zip(pg_params, path, *target)
    assert_nothing_created(pg_params, target)


def test_existing_targets_are_refused_and_kept(pg_params, scratch_db, tmp_path, target):
    path = make_zip(tmp_path / "ok.zip", [DUMP])
    existing = scratch_db()
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        odoo_zip.import_zip(pg_params, path, existing, str(tmp_path / "new_dir"))
    assert database_exists(pg_params, existing)
    assert not (tmp_path / "new_dir").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(backup.TargetExistsError, match="already exists"):
        odoo_zip.import_zip(pg_params, path, target[0], str(kept))
    assert kept.is_dir()
    assert not database_exists(pg_params, target[0])
    with pytest.raises(backup.BackupError, match="Invalid database"):
        odoo_zip.import_zip(pg_params, path, "bad name", str(tmp_path / "x"))


def test_only_the_dumps_own_bracket_lines_are_blanked(tmp_path):
    """Sanity of the line filter: a dump's own bracket lines become blank lines, every
    other line passes as it is, long lines in pieces."""
    long_line = b"x" * (odoo_zip.CHUNK + 10) + b"\n"
    dump = (b"--\n\\restrict K9\n\nSET a = 1;\n\\restrict K9\n" + long_line +
            b"\\unrestrict K9\n")
    path = make_zip(tmp_path / "lines.zip", [("dump.sql", dump)])
    with zipfile.ZipFile(path) as archive, archive.open("dump.sql") as member:
        out = b"".join(odoo_zip._unrestricted(member, odoo_zip._Budget(10 ** 9)))
    assert out == b"--\n\n\nSET a = 1;\n\\restrict K9\n" + long_line + b"\n"
