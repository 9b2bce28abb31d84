"""engine.backup.recover_replace: what a replace() killed at any step left is taken back
(before the swap completed) or kept for the caller (after), never half of each."""

import pytest
from backup_helpers import counts_of, fill, new_name, read_files, run, write_tree

from engine import backup, pg

MARKER = "saas_manager instance 7 of manager"


@pytest.fixture
def killed(pg_params, scratch_db, tmp_path):
    """The names of a replace: the live database (old data, one extra row) and its
    filestore, a restored staging copy and its filestore; the old name free."""
    live = fill(pg_params, scratch_db())
    run(pg_params, live, "INSERT INTO res_partner (name) VALUES ('only in the live one')")
    staging, old = new_name(scratch_db, "saas_pytest_rst"), new_name(scratch_db, "saas_pytest_old")
    fill(pg_params, scratch_db(name=staging))
    root = tmp_path / "filestore"
    write_tree(root / live, {"live-file": b"live"})
    write_tree(root / staging, {"restored-file": b"restored"})
    counts = {"live_counts": counts_of(pg_params, live),
              "restored_counts": counts_of(pg_params, staging)}
    with pg.maintenance(pg_params) as conn:
        pg.set_comment(conn, live, MARKER)
        pg.allow_connections(conn, live, False)  # the swap had refused connections
    return {"live": live, "staging": staging, "old": old, "root": root, **counts}


def rename(pg_params, name, new):
    with pg.maintenance(pg_params) as conn:
        pg.rename(conn, name, new)


def recover(pg_params, k):
    return backup.recover_replace(pg_params, k["live"], str(k["root"] / k["live"]),
                                  k["staging"], k["old"], comment=MARKER, allowed=True)


def assert_live_state(pg_params, k, counts, files, old_kept=False):
    with pg.maintenance(pg_params) as conn:
        assert pg.connections_allowed(conn, k["live"])
        assert pg.comment(conn, k["live"]) == MARKER
        assert not pg.exists(conn, k["staging"])
        assert pg.exists(conn, k["old"]) == old_kept
    assert counts_of(pg_params, k["live"]) == counts
    assert read_files(k["root"] / k["live"]) == files
    assert sorted(p.name for p in k["root"].iterdir()) == sorted(
        [k["live"]] + ([k["old"]] if old_kept else []))


def test_killed_between_the_two_renames_takes_everything_back(pg_params, killed):
    k = killed
    rename(pg_params, k["live"], k["old"])
    assert recover(pg_params, k) is False
    assert_live_state(pg_params, k, k["live_counts"], {"live-file": b"live"})


def test_killed_after_the_renames_and_half_the_directories_takes_everything_back(
        pg_params, killed):
    k = killed
    rename(pg_params, k["live"], k["old"])
    rename(pg_params, k["staging"], k["live"])
    (k["root"] / k["live"]).rename(k["root"] / k["old"])
    assert recover(pg_params, k) is False
    assert_live_state(pg_params, k, k["live_counts"], {"live-file": b"live"})


def test_killed_after_the_swap_keeps_it_and_the_replaced_copy(pg_params, killed):
    k = killed
    rename(pg_params, k["live"], k["old"])
    rename(pg_params, k["staging"], k["live"])
    (k["root"] / k["live"]).rename(k["root"] / k["old"])
    (k["root"] / k["staging"]).rename(k["root"] / k["live"])
    with pg.maintenance(pg_params) as conn:
        pg.set_comment(conn, k["live"], None)  # killed before the marker was set
    assert recover(pg_params, k) is True
    assert_live_state(pg_params, k, k["restored_counts"], {"restored-file": b"restored"},
                      old_kept=True)
    backup.discard(pg_params, k["old"], str(k["root"] / k["old"]))
    assert_live_state(pg_params, k, k["restored_counts"], {"restored-file": b"restored"})


def test_killed_before_the_swap_only_removes_the_staging_copy(pg_params, killed):
    assert recover(pg_params, killed) is False
    assert_live_state(pg_params, killed, killed["live_counts"], {"live-file": b"live"})


def test_names_are_checked_before_any_query(pg_params, tmp_path):
    with pytest.raises(backup.BackupError, match="Invalid"):
        backup.recover_replace(pg_params, "ok_name", str(tmp_path / "ok_name"),
                               'bad"; DROP DATABASE x; --', "old_name")
