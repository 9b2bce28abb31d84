"""Backups under real faults, in real processes: a full disk, a worker killed mid-dump.

The full disk is a file size limit (``RLIMIT_FSIZE``) on a child process
running the backup, with ``SIGXFSZ`` ignored there (as Python does), so its
writes fail with ``EFBIG`` as they would with ``ENOSPC``.  ``pg_dump``, its
child, gets ``SIGXFSZ`` back to its default (``subprocess`` restores it), so
it is killed by it instead: both must end in a clear :class:`BackupError`
and no file left.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from backup_helpers import STAMP, fill, write_tree

from engine import backup

OTHER_STAMP = "20250101T000000Z"
REPO = Path(__file__).resolve().parents[1]
#: Run by the child: ``backup.backup`` under a file size limit; prints the outcome as JSON.
CHILD = """
import json, resource, signal, sys
sys.path.insert(0, sys.argv[1])
params, database, filestore_dir, backup_dir, stamp, limit = json.loads(sys.argv[2])
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
from engine import backup
try:
    made = backup.backup(params, database, filestore_dir, backup_dir, stamp)
    print(json.dumps({"files": made.files}))
except backup.BackupError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def child(pg_params, database, filestore_dir, backup_dir, limit=0, **popen):
    args = [sys.executable, "-c", CHILD, str(REPO),
            json.dumps([pg_params, database, str(filestore_dir), str(backup_dir), STAMP, limit])]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


@pytest.fixture
def source(pg_params, scratch_db, tmp_path):
    """``(database, filestore)``: the filestore larger than the dump (a 256 KiB file)."""
    filestore = write_tree(tmp_path / "fs", {"ab/big": os.urandom(256 * 1024), "cd/x": b"x"})
    return fill(pg_params, scratch_db()), filestore


@pytest.mark.parametrize("full_during", ["dump", "archive"])
def test_a_full_disk_fails_the_backup_clearly_and_leaves_no_file(pg_params, source, tmp_path,
                                                                 full_during):
    database, filestore = source
    sizes = backup.backup(pg_params, database, str(filestore), str(tmp_path / "sizes"), STAMP)
    assert sizes.dump_bytes < sizes.filestore_bytes
    limit = sizes.dump_bytes // 2 if full_during == "dump" else \
        (sizes.dump_bytes + sizes.filestore_bytes) // 2
    backup_dir = tmp_path / "backups"
    proc = child(pg_params, database, filestore, backup_dir, limit)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    outcome = json.loads(out)
    assert outcome["error"] == "BackupError"
    assert outcome["message"].startswith("Backup of %s failed: " % database)
    if full_during == "dump":
        assert "pg_dump of %s failed: killed by SIGXFSZ (File size limit exceeded)" % \
            database in outcome["message"]
    else:
        assert "[Errno 27] File too large" in outcome["message"]
    assert os.listdir(backup_dir) == []


def _poll(pg_params, query, args, found, deadline=30):
    """Run ``query`` every 50 ms until ``found(row)`` holds; that row (None is a row)."""
    conn = psycopg2.connect(dbname="postgres", **pg_params)
    conn.autocommit = True
    try:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with conn.cursor() as cr:
                cr.execute(query, args)
                row = cr.fetchone()
            if found(row):
                return row
            time.sleep(0.05)
        raise AssertionError("%r with %r never matched" % (" ".join(query.split()), args))
    finally:
        conn.close()


def _dump_waiting(pg_params, database):
    """pid of the backend of pg_dump once it waits for a lock on ``database``."""
    return _poll(pg_params, """SELECT pid FROM pg_stat_activity WHERE datname = %s
                                 AND application_name = 'pg_dump' AND wait_event_type = 'Lock'
                            """, (database,), lambda row: row is not None)[0]


def _gone(pg_params, pid):
    """Return once backend ``pid`` has ended."""
    _poll(pg_params, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,),
          lambda row: row is None)


@pytest.mark.parametrize("killed", ["worker and pg_dump", "worker only"])
def test_a_worker_killed_mid_dump_leaves_files_that_remove_partial_removes(
        pg_params, source, tmp_path, killed):
    """pg_dump is held mid-dump by a lock on a table outside ``public`` (the counts are
    done by then), the worker is killed with SIGKILL: its reserved files stay, nothing
    removes them but :func:`backup.remove_partial`.  Killed alone, the worker leaves its
    pg_dump running: removed meanwhile, the dump does not come back when it ends."""
    database, filestore = source
    backup_dir = tmp_path / "backups"
    kept = backup.backup(pg_params, database, str(filestore), str(backup_dir), OTHER_STAMP)
    locker = psycopg2.connect(dbname=database, **pg_params)
    try:
        with locker.cursor() as cr:
            cr.execute("CREATE SCHEMA other; CREATE TABLE other.held (v int)")
            locker.commit()
            cr.execute("LOCK TABLE other.held IN ACCESS EXCLUSIVE MODE")
        proc = child(pg_params, database, filestore, backup_dir, start_new_session=True)
        pid = _dump_waiting(pg_params, database)
        if killed == "worker only":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        base = str(backup_dir / ("%s-%s" % (database, STAMP)))
        left = sorted(set(os.listdir(backup_dir)) - {os.path.basename(kept.dump_path),
                                                       os.path.basename(kept.filestore_path)})
        assert left == [os.path.basename(base + ".dump"),
                        os.path.basename(base + ".filestore.tar.gz")], "reserved, never cleaned"
        assert os.path.getsize(base + ".filestore.tar.gz") == 0
        assert backup.remove_partial(str(backup_dir), database, STAMP) == [
            base + ".dump", base + ".filestore.tar.gz"]
    finally:
        locker.rollback()
        locker.close()
    _gone(pg_params, pid)  # an orphan pg_dump finishes once the lock is released
    assert sorted(os.listdir(backup_dir)) == sorted(
        os.path.basename(path) for path in (kept.dump_path, kept.filestore_path))
    backup.verify(kept)
    assert backup.remove_partial(str(backup_dir), database, STAMP) == []


def test_remove_partial_removes_only_that_runs_files(tmp_path):
    names = ["acme-%s.dump" % STAMP, "acme-%s.filestore.tar.gz.part" % STAMP,
             "acme-%s.dump" % OTHER_STAMP, "acme.example-%s.dump" % STAMP,
             "acme-%s.dump.sha" % STAMP]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = backup.remove_partial(str(tmp_path), "acme", STAMP)
    assert removed == [str(tmp_path / names[0]), str(tmp_path / names[1])]
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


@pytest.mark.parametrize("database, stamp", [("../etc", STAMP), ("acme", "x/../../y"),
                                             ("", STAMP), ("acme", "")])
def test_remove_partial_refuses_names_that_leave_the_directory(tmp_path, database, stamp):
    with pytest.raises(backup.BackupError, match="Invalid"):
        backup.remove_partial(str(tmp_path), database, stamp)
