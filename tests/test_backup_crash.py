"""kill -9 in the middle of a backup: no partial file counts as a backup, the database is
intact, and the backup job runs again after the restart (at-least-once) and succeeds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from photobox.core import Photobox
from photobox.datadir.copy import verify_database_file
from photobox.db import connect
from photobox.safety import backups

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from photobox.core import Photobox
    from photobox.settings import load_settings
    from photobox.safety import backups

    backups.STEP_PAUSE = 0.05  # a slow backup, so the test can kill it in the middle
    box = Photobox(load_settings({"data_dir": sys.argv[1], "workers": 1}, env={})).open()
    box.scheduler.enqueue_sync("backup", "scheduled")
    print("started", flush=True)
    asyncio.run(box.scheduler.run_until_idle())
    print("finished", flush=True)
""")


def test_kill_9_during_backup_leaves_no_partial_and_next_backup_works(settings, tmp_path):
    box = Photobox(settings).open()
    with box.db.transaction() as conn:  # ~24 MiB of data: a backup of many steps
        conn.execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, pad BLOB)")
        conn.executemany("INSERT INTO ballast (pad) VALUES (randomblob(8000))", [()] * 3000)
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('keep me', 0, 0)")
    box.close()
    folder = settings.data_dir / "backups"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(settings.data_dir)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        partial = None
        while time.monotonic() < deadline:
            parts = list(folder.glob("*.partial"))
            if parts and parts[0].stat().st_size > 2 * 1024 * 1024:
                partial = parts[0]
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.01)
        assert partial is not None, "the backup never got going"
        os.killpg(proc.pid, signal.SIGKILL)  # mid-copy
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert partial.exists(), "killed before it finished"
    assert backups.list_backups(folder) == [], "a partial file is never listed as a backup"

    box = Photobox(settings).open()  # the restart
    try:
        assert not list(folder.glob("*partial*")), "leftovers (and their journals) are cleaned up at start"
        with box.db.reader() as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM albums WHERE name = 'keep me'").fetchone()[0] == 1
            state = conn.execute("SELECT state FROM jobs WHERE kind = 'backup'").fetchone()[0]
        assert state == "running"  # what the killed process left
        assert box.scheduler.recover()[0] == 1  # handed back to the queue: at-least-once
        asyncio.run(box.scheduler.run_until_idle())
        made = backups.list_backups(folder)
        assert len(made) == 1 and made[0].scheduled and made[0].sidecar is not None
        info = verify_database_file(made[0].path, full=True)
        assert info["check"] == "ok"
        conn = connect(made[0].path, readonly=True)
        assert conn.execute("SELECT count(*) FROM ballast").fetchone()[0] == 3000
        conn.close()
    finally:
        box.close()


def test_kill_9_the_server_during_its_scheduled_backup(settings):
    from tests.server import Server

    box = Photobox(settings).open()
    with box.db.transaction() as conn:
        conn.execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, pad BLOB)")
        conn.executemany("INSERT INTO ballast (pad) VALUES (randomblob(8000))", [()] * 3000)
        conn.execute("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, "
                     "created_at, updated_at) VALUES (1, 'a.jpg', 'a.jpg', x'00', 1, 0, 'image', 0, 0, 0)")
    box.close()
    folder = settings.data_dir / "backups"
    # No backup exists yet, so the server starts one right away; the plugin makes it slow.
    server = Server(settings.data_dir, env={"PHOTOBOX_PLUGINS": "tests.plugins.slow_backup"}).start()
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 1024 * 1024 for p in folder.glob("*.partial")):
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.01)
    finally:
        server.kill()
    assert backups.list_backups(folder) == []
    server = Server(settings.data_dir).start()  # restart, at normal speed
    try:
        deadline = time.monotonic() + 120
        while not (made := backups.list_backups(folder)) or made[0].sidecar is None:  # db first, then its export
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.05)
        assert not list(folder.glob("*.partial"))
    finally:
        server.stop()
    made = backups.list_backups(folder)
    assert len(made) == 1
    assert verify_database_file(made[0].path, full=True)["check"] == "ok"
    conn = connect(settings.db_path, readonly=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_leftovers_of_a_killed_cli_backup_go_at_the_next_backup_while_the_server_runs(settings):
    """The server holds the folder, so no start-up clean-up runs; the next backup removes
    what the killed one left (.partial and SQLite's .partial-journal), and never what a
    backup still being written owns."""
    from tests.server import Server

    box = Photobox(settings).open()
    with box.db.transaction() as conn:
        conn.execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, pad BLOB)")
        conn.executemany("INSERT INTO ballast (pad) VALUES (randomblob(8000))", [()] * 3000)
    box.close()
    folder = settings.data_dir / "backups"
    server = Server(settings.data_dir, env={"PHOTOBOX_BACKUP_INTERVAL_HOURS": "0"}).start()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PHOTOBOX_PLUGINS": "tests.plugins.slow_backup"}
        slow = subprocess.Popen([sys.executable, "-m", "photobox", "backup", "--data-dir", str(settings.data_dir)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not any(p.stat().st_size > 2 * 1024 * 1024 for p in folder.glob("*.partial")):
                assert slow.poll() is None and time.monotonic() < deadline, slow.stderr.read()
                time.sleep(0.01)
            # A second, living backup writer: its files must survive the clean-up below.
            live = subprocess.Popen([sys.executable, "-m", "photobox", "backup", "--data-dir",
                                     str(settings.data_dir), "--to", str(folder / "elsewhere.db")],
                                    cwd=ROOT, env={**env, "PHOTOBOX_TEST_BACKUP_PAUSE": "0.2"}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
            while not (folder / "elsewhere.db.partial").exists():
                assert live.poll() is None and time.monotonic() < deadline, live.stderr.read()
                time.sleep(0.01)
            os.killpg(slow.pid, signal.SIGKILL)
            slow.wait(30)
            left = sorted(p.name for p in folder.iterdir() if p.name.startswith("photobox-"))
            assert any(n.endswith(".partial-journal") for n in left), left  # what kill -9 leaves
            r = subprocess.run([sys.executable, "-m", "photobox", "backup", "--data-dir", str(settings.data_dir)],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            assert live.poll() is None and (folder / "elsewhere.db.partial").exists(), \
                "a backup in progress keeps its file"
            assert live.wait(300) == 0, live.stderr.read()
        finally:
            for proc in (slow, locals().get("live")):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    finally:
        server.stop()
    assert not [p.name for p in folder.iterdir() if "partial" in p.name]
    made = backups.list_backups(folder)
    assert len(made) == 2 and {b.scheduled for b in made} == {True, False}  # the new one and elsewhere.db
    assert all(b.sidecar is not None for b in made)


def test_a_backup_whose_export_fails_gets_no_final_name(box, tmp_path):
    """The export is written before the rename: a backup under its final name is complete."""
    dest = tmp_path / "b.db"
    (tmp_path / "b.json.partial").mkdir()  # the export cannot be written there
    with pytest.raises(IsADirectoryError):
        backups.make_backup(box, dest)
    assert not dest.exists() and not (tmp_path / "b.db.partial").exists()
    (tmp_path / "b.json.partial").rmdir()
    made = backups.make_backup(box, dest)
    assert made == dest and dest.with_suffix(".json").is_file()
