"""engine.modules: checksums of real addon folders, and a real database shaped like Odoo's."""

import hashlib
import os
from pathlib import Path

import psycopg2
import pytest

from engine import modules, usage

ODOO_ROOT = Path("/opt/odoo/18.0")

SCHEMA = """
CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar, state varchar,
    latest_version varchar);
INSERT INTO ir_module_module (name, state) VALUES
    ('base', 'installed'), ('sale', 'to upgrade'), ('crm', 'uninstalled'),
    ('stock', 'to install'), ('mail', 'installed'), ('old', 'to remove');
"""


def addon(folder, name, files=None):
    """A module folder ``folder/name`` with a manifest and ``files`` ({relative path: text})."""
    path = Path(folder) / name
    files = {"__manifest__.py": "{'name': %r}\n" % name, "__init__.py": "", **(files or {})}
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


@pytest.fixture
def module(tmp_path):
    return addon(tmp_path / "addons", "acme", {"models/acme.py": "x = 1\n",
                                               "views/acme.xml": "<odoo/>\n"})


@pytest.fixture
def db(schema_db):
    return schema_db(SCHEMA, "saas_pytest_modules")


def scalar(conn, query):
    with conn.cursor() as cr:
        cr.execute(query)
        value = cr.fetchone()[0]
    conn.rollback()
    return value


# addon_checksum ---------------------------------------------------------------------------


def test_the_checksum_is_a_deterministic_sha256(module, tmp_path):
    first = modules.addon_checksum(module)
    assert modules.CHECKSUM_RE.fullmatch(first)
    assert modules.addon_checksum(str(module)) == first
    # Same tree elsewhere, files written in another order: same checksum.
    copy = tmp_path / "elsewhere" / "acme"
    for rel in ("views/acme.xml", "models/acme.py", "__init__.py", "__manifest__.py"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((module / rel).read_bytes())
    os.utime(copy / "__init__.py", (0, 0))
    assert modules.addon_checksum(copy) == first


@pytest.mark.parametrize("change", ["edit", "add", "remove", "rename", "add_empty", "move"])
def test_the_checksum_changes_with_the_code(module, change):
    before = modules.addon_checksum(module)
    if change == "edit":
        (module / "models/acme.py").write_text("x = 2\n")
    elif change == "add":
        (module / "models/other.py").write_text("x = 1\n")
    elif change == "remove":
        (module / "views/acme.xml").unlink()
    elif change == "rename":
        (module / "views/acme.xml").rename(module / "views/acme2.xml")
    elif change == "add_empty":
        (module / "README.rst").write_text("")
    else:
        (module / "models/acme.py").rename(module / "acme.py")
    assert modules.addon_checksum(module) != before


def test_compiled_and_hidden_files_do_not_count(module):
    before = modules.addon_checksum(module)
    (module / "models/__pycache__").mkdir()
    (module / "models/__pycache__/acme.cpython-311.pyc").write_bytes(b"\x00compiled")
    # What Python leaves there while it writes one (not named *.pyc).
    (module / "models/__pycache__/acme.cpython-311.pyc.140234").write_bytes(b"\x00")
    (module / "models/acme.pyc").write_bytes(b"\x00")
    (module / "models/acme.pyo").write_bytes(b"\x00")
    (module / ".DS_Store").write_bytes(b"\x00")
    (module / "views/.acme.xml.swp").write_bytes(b"\x00")
    (module / ".git").mkdir()
    (module / ".git/HEAD").write_text("ref: refs/heads/main\n")
    assert modules.addon_checksum(module) == before


def test_the_checksum_is_the_documented_format(tmp_path):
    """Pinned: the same tree gives this digest on every machine and release; a format
    change must be deliberate (it makes every module of every database update once)."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "b.py").write_bytes(b"b")
    (tree / "sub/a.xml").write_bytes(b"")
    (tree / "a").symlink_to("sub", target_is_directory=True)
    stream = hashlib.sha256(b"saas_manager addon checksum 1\0")
    for rel, kind, content in ((b"a", b"l", b"sub"), (b"b.py", b"f", b"b"),
                               (b"sub/a.xml", b"f", b"")):
        stream.update(rel + b"\0" + kind + hashlib.sha256(content).digest())
    assert modules.addon_checksum(tree) == stream.hexdigest() == (
        "881a2aca362d603679cea791f0dbccdc8e4eb77b37ea9e13452ed4f40d8d7178")


def test_paths_and_contents_cannot_run_into_each_other(tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "ab").write_text("c")
    (two / "a").write_text("bc")
    assert modules.addon_checksum(one) != modules.addon_checksum(two)
    # A file and a folder of the same joined name, and two files against one.
    (tmp_path / "three/a").mkdir(parents=True)
    (tmp_path / "three/a/b").write_text("c")
    (tmp_path / "four").mkdir()
    (tmp_path / "four/a").write_text("")
    (tmp_path / "four/b").write_text("c")
    sums = {modules.addon_checksum(tmp_path / name) for name in ("one", "two", "three", "four")}
    assert len(sums) == 4


def test_symlinked_files_are_read_and_symlinked_folders_not_followed(module, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shared.py").write_text("y = 1\n")
    (module / "shared.py").symlink_to(outside / "shared.py")
    (module / "loop").symlink_to(module, target_is_directory=True)  # would never end
    (module / "data").symlink_to(outside, target_is_directory=True)
    before = modules.addon_checksum(module)
    (outside / "shared.py").write_text("y = 2\n")
    after = modules.addon_checksum(module)
    assert after != before
    (outside / "new.py").write_text("")  # behind the folder link: not followed
    assert modules.addon_checksum(module) == after
    (module / "data").unlink()
    (module / "data").symlink_to(tmp_path, target_is_directory=True)  # retargeted
    assert modules.addon_checksum(module) != after


def test_a_fifo_is_skipped_not_read(module):
    before = modules.addon_checksum(module)
    os.mkfifo(module / "pipe")
    assert modules.addon_checksum(module) == before


def test_a_module_folder_reached_through_a_symlink_is_hashed(module, tmp_path):
    (tmp_path / "linked").symlink_to(module, target_is_directory=True)
    assert modules.addon_checksum(tmp_path / "linked") == modules.addon_checksum(module)


# find_addon, odoo_addons_paths ------------------------------------------------------------


def test_the_first_addons_path_holding_the_module_wins(tmp_path):
    first = addon(tmp_path / "one", "acme")
    addon(tmp_path / "two", "acme")
    only_two = addon(tmp_path / "two", "other")
    paths = [tmp_path / "one", str(tmp_path / "two")]
    assert modules.find_addon("acme", paths) == str(first)
    assert modules.find_addon("other", paths) == str(only_two)
    assert modules.find_addon("nothing", paths) is None
    assert modules.find_addon("acme", []) is None


def test_a_folder_without_manifest_is_not_a_module(tmp_path):
    (tmp_path / "one/acme").mkdir(parents=True)
    (tmp_path / "one/acme/__init__.py").write_text("")
    (tmp_path / "one/acme/__manifest__.py").mkdir()  # a folder, not a manifest
    found = addon(tmp_path / "two", "acme")
    legacy = addon(tmp_path / "one", "legacy", {"__openerp__.py": "{}"})
    (legacy / "__manifest__.py").unlink()
    paths = [tmp_path / "one", tmp_path / "two"]
    assert modules.find_addon("acme", paths) == str(found)
    assert modules.find_addon("legacy", paths) == str(legacy)


class Untouchable:
    """An addons path list that fails the test when anything looks into it."""

    def __iter__(self):
        raise AssertionError("the addons paths were read")


@pytest.mark.parametrize("name", ["../x", "A", "x\n", "", "x/y", "/etc", ".", "é", None, 1])
def test_bad_module_names_are_refused_before_the_filesystem(monkeypatch, name):
    def touched(*args, **kwargs):
        raise AssertionError("the filesystem was touched")

    for function in ("isfile", "isdir", "exists"):
        monkeypatch.setattr(os.path, function, touched)
    monkeypatch.setattr(os, "scandir", touched)
    with pytest.raises(ValueError, match="not a module name"):
        modules.find_addon(name, Untouchable())
    with pytest.raises(ValueError, match="not a module name"):
        modules.checksums(["base", name], Untouchable())


@pytest.mark.parametrize("paths", ["/opt/odoo/18.0/odoo/addons", Path("/tmp")])
def test_an_addons_path_string_is_not_a_list_of_folders(paths):
    with pytest.raises(TypeError):
        modules.find_addon("base", paths)


def fake_odoo(root):
    """A tree shaped like an Odoo source checkout: ``odoo/addons/base`` and ``addons/``."""
    base = addon(root / "odoo" / "addons", "base")
    addon(root / "addons", "web")
    return base


def test_odoo_searches_its_own_addons_folder_first(tmp_path):
    base = fake_odoo(tmp_path / "odoo18")
    custom = tmp_path / "custom"
    addon(custom, "base")  # never shadows Odoo's own base
    acme = addon(custom, "acme")
    data = tmp_path / "data"
    in_data = addon(data / "addons" / modules.SERIES, "acme")
    paths = modules.odoo_addons_paths(tmp_path / "odoo18", " %s ,, %s" % (custom, custom), data)
    assert paths == [str(tmp_path / "odoo18/odoo/addons"), str(data / "addons/18.0"),
                     str(custom)]
    assert modules.find_addon("base", paths) == str(base)
    assert modules.find_addon("acme", paths) == str(in_data)
    assert modules.find_addon("acme", modules.odoo_addons_paths(tmp_path / "odoo18", [custom])) \
        == str(acme)
    # No addons_path configured: Odoo's default, odoo/addons then the checkout's addons.
    assert modules.odoo_addons_paths(tmp_path / "odoo18") == [
        str(tmp_path / "odoo18/odoo/addons"), str(tmp_path / "odoo18/addons")]
    # A data dir without addons/18.0 adds nothing.
    assert modules.odoo_addons_paths(tmp_path / "odoo18", [custom], tmp_path / "none") == [
        str(tmp_path / "odoo18/odoo/addons"), str(custom)]


@pytest.mark.skipif(not (ODOO_ROOT / "odoo/addons/base/__manifest__.py").is_file(),
                    reason="no Odoo 18 source tree at /opt/odoo/18.0")
def test_odoo_base_module_is_found_and_hashed(tmp_path):
    custom = tmp_path / "custom"
    addon(custom, "base")
    paths = modules.odoo_addons_paths(ODOO_ROOT, [custom])
    assert modules.find_addon("base", paths) == str(ODOO_ROOT / "odoo/addons/base")
    cache = {}
    sums = modules.checksums(["base", "no_such_module"], paths, cache)
    assert modules.CHECKSUM_RE.fullmatch(sums["base"])
    assert sums["no_such_module"] is None
    assert cache == sums


# checksums --------------------------------------------------------------------------------


def test_checksums_of_present_and_missing_modules(tmp_path, module):
    paths = [module.parent]
    assert modules.checksums(["acme", "gone", "acme"], paths) == {
        "acme": modules.addon_checksum(module), "gone": None}
    assert modules.checksums([], paths) == {}


# the database -----------------------------------------------------------------------------


def test_installed_modules_are_those_odoo_loads(db):
    assert modules.installed(db) == ["base", "mail", "old", "sale"]


def test_reads_leave_no_transaction_open(db):
    modules.installed(db)
    modules.stored(db)
    assert db.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_reading_a_database_without_the_table_creates_nothing(db, pg_params):
    assert modules.stored(db) == {}
    assert scalar(db, "SELECT to_regclass('saas_module_checksum')") is None
    # Reading works on a connection that cannot write at all.
    readonly = usage.connect_read_only(pg_params, db.info.dbname)
    try:
        assert modules.stored(readonly) == {}
        assert modules.installed(readonly) == ["base", "mail", "old", "sale"]
    finally:
        readonly.close()
    assert scalar(db, "SELECT to_regclass('saas_module_checksum')") is None


def test_store_then_stored_round_trips(db):
    sums = {"base": "a" * 64, "sale": "0123456789abcdef" * 4, "gone": None}
    modules.store(db, sums)
    assert db.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert modules.stored(db) == {"base": "a" * 64, "sale": "0123456789abcdef" * 4}
    modules.store(db, {"mail": "b" * 64})  # replaces, does not merge
    assert modules.stored(db) == {"mail": "b" * 64}
    modules.store(db, {})
    assert modules.stored(db) == {}
    assert scalar(db, "SELECT to_regclass('saas_module_checksum')") is not None


@pytest.mark.parametrize("sums", [{"base": "A" * 64}, {"base": "a" * 63}, {"base": 12},
                                  {"Base": "a" * 64}, {"x'); DROP TABLE x; --": "a" * 64}])
def test_store_refuses_bad_rows_before_writing(db, sums):
    modules.store(db, {"mail": "b" * 64})
    with pytest.raises(ValueError):
        modules.store(db, sums)
    assert modules.stored(db) == {"mail": "b" * 64}


def test_a_failed_store_keeps_the_previous_rows(db, pg_params):
    modules.store(db, {"mail": "b" * 64})
    readonly = usage.connect_read_only(pg_params, db.info.dbname)
    try:
        with pytest.raises(psycopg2.Error):
            modules.store(readonly, {"base": "a" * 64})
    finally:
        readonly.close()
    assert modules.stored(db) == {"mail": "b" * 64}


# plan -------------------------------------------------------------------------------------


def test_plan_sorts_modules_into_changed_missing_and_unchanged():
    result = modules.plan(
        ["sale", "base", "mail", "web", "custom", "base"],
        {"base": "1" * 64, "sale": "2" * 64, "web": "3" * 64, "uninstalled": "4" * 64},
        {"base": "1" * 64, "sale": "9" * 64, "web": "3" * 64, "mail": "5" * 64,
         "custom": None, "extra": "6" * 64},
    )
    assert result == modules.UpdatePlan(changed=("mail", "sale"), missing=("custom",),
                                        unchanged=2)
    assert not result.up_to_date
    assert modules.plan(["base"], {"base": "1" * 64}, {"base": "1" * 64}).up_to_date
    assert modules.plan([], {}, {}) == modules.UpdatePlan((), (), 0)
    with pytest.raises(AttributeError):
        result.unchanged = 3


# changed_modules, end to end ------------------------------------------------------------


@pytest.fixture
def fleet(tmp_path, db):
    """Addons for every module ``db`` has installed, but ``old``, pending removal."""
    folder = tmp_path / "fleet"
    for name in ("base", "mail", "sale", "crm"):
        addon(folder, name, {"models/%s.py" % name: "x = 1\n"})
    with db.cursor() as cr:
        cr.execute("UPDATE ir_module_module SET state = 'uninstalled' WHERE name = 'old'")
    db.commit()
    return [folder]


def test_changed_modules_end_to_end(db, fleet):
    first = modules.changed_modules(db, fleet)
    assert first == modules.UpdatePlan(("base", "mail", "sale"), (), 0)
    modules.store(db, modules.checksums(modules.installed(db), fleet))
    assert modules.changed_modules(db, fleet) == modules.UpdatePlan((), (), 3)
    (fleet[0] / "mail/models/mail.py").write_text("x = 2\n")
    assert modules.changed_modules(db, fleet) == modules.UpdatePlan(("mail",), (), 2)
    (fleet[0] / "mail/models/__pycache__").mkdir()
    (fleet[0] / "mail/models/__pycache__/mail.cpython-311.pyc").write_bytes(b"\x00")
    assert modules.changed_modules(db, fleet).changed == ("mail",)


def test_a_module_the_server_lacks_blocks_the_update(db, fleet):
    with db.cursor() as cr:
        cr.execute("UPDATE ir_module_module SET state = 'to remove' WHERE name = 'old'")
    db.commit()
    result = modules.changed_modules(db, fleet)
    assert result.missing == ("old",)
    assert not result.up_to_date


def test_the_campaign_cache_hashes_each_module_once(db, fleet, monkeypatch):
    real = modules.addon_checksum
    hashed = []

    def counting(path):
        hashed.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(modules, "addon_checksum", counting)
    cache = {}
    modules.changed_modules(db, fleet, cache)
    assert sorted(hashed) == ["base", "mail", "sale"]
    assert set(cache) == {"base", "mail", "sale"}
    modules.store(db, modules.checksums(modules.installed(db), fleet, cache))
    assert sorted(hashed) == ["base", "mail", "sale"]  # storing reused the cache
    # Other databases of the campaign: no file is hashed again...
    for _ in range(3):
        assert modules.changed_modules(db, fleet, cache).up_to_date
    assert len(hashed) == 3
    # ...even when the files change during the campaign: the next campaign sees it.
    (fleet[0] / "base/models/base.py").write_text("x = 2\n")
    assert modules.changed_modules(db, fleet, cache).up_to_date
    assert modules.changed_modules(db, fleet, {}).changed == ("base",)


def test_an_invalid_installed_name_is_an_error(db, fleet):
    with db.cursor() as cr:
        cr.execute("INSERT INTO ir_module_module (name, state) VALUES ('../etc', 'installed')")
    db.commit()
    with pytest.raises(ValueError, match="not a module name"):
        modules.changed_modules(db, fleet)
