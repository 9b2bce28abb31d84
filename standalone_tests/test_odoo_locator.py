"""How the developer tool finds (or refuses) an Odoo tree."""

import pytest
from saasdev import odoo_locator
from saasdev.errors import ToolError


def fake_odoo(root, major=18, minor=0, requirements=True):
    package = root / "odoo"
    (package / "addons").mkdir(parents=True)
    (package / "release.py").write_text(
        "version_info = (%d, %d, 0, FINAL, 0, '')\n" % (major, minor))
    if requirements:
        (root / "requirements.txt").write_text("psycopg2\n")
    return root


def test_odoo_path_wins(tmp_path):
    root = fake_odoo(tmp_path / "src")
    found = odoo_locator.locate({"ODOO_PATH": str(root)}, places=())
    assert found.root == root.resolve()
    assert found.found_by == "ODOO_PATH"
    assert found.addons_paths == [root.resolve() / "odoo" / "addons"]


def test_odoo_path_may_name_the_package_folder(tmp_path):
    root = fake_odoo(tmp_path / "src")
    found = odoo_locator.locate({"ODOO_PATH": str(root / "odoo")}, places=())
    assert found.root == root.resolve()


def test_wrong_odoo_path_is_one_line(tmp_path):
    with pytest.raises(ToolError) as info:
        odoo_locator.locate({"ODOO_PATH": str(tmp_path)}, places=())
    assert "does not contain Odoo" in str(info.value)
    assert "\n" not in str(info.value)


def test_non_18_odoo_path_is_refused(tmp_path):
    root = fake_odoo(tmp_path / "old", major=17)
    with pytest.raises(ToolError, match=r"holds Odoo 17\.0; saas_manager needs Odoo 18\.0"):
        odoo_locator.locate({"ODOO_PATH": str(root)}, places=())


def test_usual_places_skip_other_versions(tmp_path, monkeypatch):
    monkeypatch.setattr(odoo_locator.importlib.util, "find_spec", lambda name: None)
    fake_odoo(tmp_path / "odoo17", major=17)
    good = fake_odoo(tmp_path / "odoo18", requirements=False)
    found = odoo_locator.locate({}, places=(str(tmp_path / "odoo*"),))
    assert found.root == good.resolve()
    assert found.system_packaged  # no requirements.txt: Debian-style install


def test_not_found_explains_what_was_looked_at(tmp_path, monkeypatch):
    monkeypatch.setattr(odoo_locator.importlib.util, "find_spec", lambda name: None)
    fake_odoo(tmp_path / "odoo16", major=16)
    with pytest.raises(odoo_locator.OdooNotFound) as info:
        odoo_locator.locate({}, places=(str(tmp_path / "odoo*"),))
    message = str(info.value)
    assert "Odoo 18 was not found" in message
    assert "Odoo 16.0" in message
    assert "ODOO_PATH" in message
