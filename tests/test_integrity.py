"""Integrity: checksums re-verified in checkpointed slices, missing/changed/orphaned files
reported (never deleted), and the storage checks at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from photobox import datadir as mounts
from photobox.core import Photobox
from photobox.datadir import StorageMissingError
from photobox.library import libraries
from photobox.library.libraries import library_problems
from photobox.safety import integrity
from photobox.web.app import create_app
from tests.gen import jpeg_bytes
from tests.test_backup import import_files

ROOT = Path(__file__).resolve().parents[1]


def paths(box):
    with box.db.reader() as conn:
        return {i: box.path("library", p) for i, p in conn.execute("SELECT id, rel_path FROM assets")}


def open_issues(box):
    with box.db.reader() as conn:
        return {(i["kind"], i["rel_path"]) for i in integrity.list_issues(conn)}


def snapshot(folder: Path):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_pass_reports_changed_missing_and_orphans_and_deletes_nothing(box, tmp_path):
    ids = import_files(box, tmp_path, 4)
    files = paths(box)
    changed, missing = files[ids[0]], files[ids[1]]
    changed.write_bytes(changed.read_bytes()[:-10] + b"bitrot!!!!")  # same size, other bytes
    missing.unlink()
    stray = box.path("library", "2020", "stray.jpg")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(jpeg_bytes(seed=42))
    before = snapshot(box.path("library"))
    counts = integrity.run_pass(box)
    assert counts["finished"] and counts["checked"] == 4
    assert (counts["ok"], counts["changed"], counts["missing"], counts["orphan"]) == (2, 1, 1, 1)
    rel = lambda p: str(p.relative_to(box.path("library")))  # noqa: E731
    assert open_issues(box) == {("changed", rel(changed)), ("missing", rel(missing)), ("orphan", "2020/stray.jpg")}
    assert snapshot(box.path("library")) == before, "the integrity check never changes or deletes a file"
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets WHERE offline = 1 OR trashed_at IS NOT NULL").fetchone()[0] == 0
    # Fixed by hand: the issues resolve on the next pass.
    stray.unlink()
    missing.write_bytes(b"")  # still wrong: now "changed" instead of "missing"
    integrity.run_pass(box)
    assert open_issues(box) == {("changed", rel(changed)), ("changed", rel(missing))}


def test_slices_are_time_boxed_and_resume_after_a_restart(settings, tmp_path, clock):
    box = Photobox(settings, clock=clock).open()
    import_files(box, tmp_path, 5)
    integrity._BATCH = 2  # small batches so the checkpoint moves within a tiny library
    try:
        settings.integrity_days = 3  # 5 assets over 3 days: at most 2 per daily slice
        first = integrity.run_slice(box)
        assert first["checked"] == 2 and not first["finished"]
        with box.db.reader() as conn:
            state = integrity.load_state(conn)
        assert state["cursor"] > 0 and state["phase"] == "assets"
        box.close()
        box = Photobox(settings, clock=clock).open()  # a restart: the cursor is in the database
        assert not asyncio.run(integrity.queue_slice_if_due(box)), "one slice a day"
        clock.advance(86400)
        assert asyncio.run(integrity.queue_slice_if_due(box))
        asyncio.run(box.scheduler.run_until_idle())
        with box.db.reader() as conn:
            second = integrity.load_state(conn)
        assert second["cursor"] > state["cursor"] and second["checked"] == 4
        rest = integrity.run_slice(box, spread=False)
        assert rest["checked"] == 1 and rest["finished"]
        with box.db.reader() as conn:
            done = integrity.load_state(conn)
        assert done["pass_started_at"] is None and done["last_pass_checked"] == 5
        clock.advance(86400)
        assert not asyncio.run(integrity.queue_slice_if_due(box)), "the next pass starts integrity_days after"
        clock.advance(3 * 86400)
        assert asyncio.run(integrity.queue_slice_if_due(box))
        # A zero budget still checks one file, so progress is guaranteed.
        assert integrity.run_slice(box, budget_seconds=0.000001)["checked"] >= 1
    finally:
        integrity._BATCH = 100
        box.close()


def test_missing_external_folder_is_skipped_not_reported(box, tmp_path):
    share = tmp_path / "nas"
    share.mkdir()
    (share / "a.jpg").write_bytes(jpeg_bytes(seed=7))
    with box.db.transaction() as conn:
        lib = libraries.add_library(conn, share, now=box.clock(), data_dir=box.data_dir)
    libraries.scan_library(box, lib)
    asyncio.run(box.scheduler.run_until_idle())
    (share / "a.jpg").rename(tmp_path / "a.jpg")
    share.rmdir()  # the share is not mounted
    counts = integrity.run_pass(box)
    assert counts["skipped"] == 1 and counts["missing"] == 0
    problems = library_problems(box)
    assert len(problems) == 1 and "missing" in problems[0]
    share.mkdir()  # an empty mount point
    problems = library_problems(box)
    assert len(problems) == 1 and "empty" in problems[0]
    # Its periodic scans are paused (not queued, so not failed either) until it is back.
    with box.db.transaction() as conn:
        conn.execute("UPDATE libraries SET last_scan_at = 0 WHERE id = ?", (lib,))
        conn.execute("DELETE FROM jobs WHERE kind = 'scan'")
    asyncio.run(libraries.queue_due_scans(box))
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'scan'").fetchone()[0] == 0
    (tmp_path / "a.jpg").rename(share / "a.jpg")
    asyncio.run(libraries.queue_due_scans(box))
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'scan'").fetchone()[0] == 1


def test_cli_verify_reports_and_exits_1(box, tmp_path, settings):
    ids = import_files(box, tmp_path, 2)
    paths(box)[ids[0]].unlink()
    box.close()
    r = subprocess.run([sys.executable, "-m", "photobox", "verify", "--data-dir", str(settings.data_dir)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "1 missing" in r.stdout and "missing" in r.stdout.splitlines()[1]



def test_verify_checks_every_original_even_after_a_slice_left_a_pass_open(settings, tmp_path, clock):
    """A server slice stopped mid-pass; `photobox verify` then flips no byte past unseen:
    without --slice it is a fresh, whole pass (it used to finish the open pass only)."""
    box = Photobox(settings, clock=clock).open()
    ids = import_files(box, tmp_path, 6)
    integrity._BATCH = 2
    try:
        settings.integrity_days = 3  # 6 assets over 3 days: a slice does 2
        assert integrity.run_slice(box)["checked"] == 2
        with box.db.reader() as conn:
            assert integrity.load_state(conn)["pass_started_at"] is not None  # the pass stays open
        first = paths(box)[ids[0]]  # checked by that slice, before the cursor
        data = bytearray(first.read_bytes())
        data[len(data) // 2] ^= 0x01  # one flipped bit
        first.write_bytes(bytes(data))
    finally:
        integrity._BATCH = 100
        box.close()
    r = subprocess.run([sys.executable, "-m", "photobox", "verify", "--data-dir", str(settings.data_dir)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "checked 6 originals" in r.stdout and "1 changed" in r.stdout
    assert str(first.relative_to(settings.data_dir / "library")) in r.stdout
    box = Photobox(settings, clock=clock).open()
    try:
        with box.db.reader() as conn:
            state = integrity.load_state(conn)
        assert state["pass_started_at"] is None and state["last_pass_checked"] == 6  # recorded as a whole pass
    finally:
        box.close()

# -- the data folder at start -------------------------------------------------------------

def test_new_folder_is_created_and_marked(settings):
    box = Photobox(settings).open()
    marker = mounts.read_marker(settings.data_dir)
    with box.db.reader() as conn:
        assert marker["instance_id"] == conn.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0]
    box.close()
    Photobox(settings).open().close()  # and opens again


def test_unmounted_fstab_disk_is_refused(tmp_path):
    ssd = tmp_path / "mnt" / "ssd"
    ssd.mkdir(parents=True)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# comment\nUUID=abc / ext4 defaults 0 1\nUUID=def {ssd} ext4 defaults,nofail 0 2\n"
                     "/swapfile none swap sw 0 0\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n")
    with pytest.raises(StorageMissingError, match="nothing is mounted there"):
        mounts.check_data_dir(ssd / "photobox", fstab=fstab, mountinfo=mountinfo)
    mountinfo.write_text(f"22 1 8:2 / / rw - ext4 /dev/sda2 rw\n40 22 8:17 / {ssd} rw - ext4 /dev/sdb1 rw\n")
    mounts.check_data_dir(ssd / "photobox", fstab=fstab, mountinfo=mountinfo)  # mounted: fine (a new folder)


def test_missing_parent_folder_is_refused_not_created(tmp_path):
    data = tmp_path / "media" / "SSD" / "photobox"  # an automounted disk that is not plugged in
    with pytest.raises(StorageMissingError, match="nor the folder above it"):
        mounts.check_data_dir(data)
    assert not (tmp_path / "media").exists()


def test_require_existing_data_setting(settings):
    settings.require_existing_data = True
    with pytest.raises(StorageMissingError, match="require_existing_data"):
        Photobox(settings).open()
    assert not settings.data_dir.exists()
    settings.require_existing_data = False
    Photobox(settings).open().close()
    settings.require_existing_data = True
    Photobox(settings).open().close()  # the database exists now


def test_originals_without_database_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "library" / "2020").mkdir(parents=True)
    (data / "library" / "2020" / "a.jpg").write_bytes(b"x")
    with pytest.raises(StorageMissingError, match="holds originals"):
        mounts.check_data_dir(data)


def test_server_starts_in_storage_missing_state_and_recovers(settings, monkeypatch):
    from photobox.web import storage_gate

    Photobox(settings).open().close()
    db = settings.db_path
    db.rename(db.with_name("elsewhere.db"))  # as if the disk with the database were not there
    monkeypatch.setattr(storage_gate, "RETRY_SECONDS", 0.05)
    with TestClient(app=create_app(settings)) as client:
        page = client.get("/", headers={"accept": "text/html"})
        assert page.status_code == 503 and "Storage missing" in page.text and "photobox.db is missing" in page.text
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "storage-missing"
        assert client.get("/static/css/app.css").status_code == 200
        assert not db.exists(), "nothing was created"
        db.with_name("elsewhere.db").rename(db)  # the disk is back
        import time

        deadline = time.monotonic() + 20
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the server did not notice the storage came back"
            time.sleep(0.05)
        assert client.get("/healthz").json()["status"] == "ok"


def test_doctor_says_when_storage_is_missing(settings, tmp_path):
    box = Photobox(settings).open()
    share = tmp_path / "usb"
    share.mkdir()
    with box.db.transaction() as conn:
        libraries.add_library(conn, share, now=box.clock(), data_dir=box.data_dir)
    box.close()
    share.rmdir()
    run = lambda: subprocess.run([sys.executable, "-m", "photobox", "doctor", "--data-dir", str(settings.data_dir)],  # noqa: E731
                                 cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 timeout=120)
    r = run()
    assert r.returncode == 1 and "storage missing" in r.stdout and str(share) in r.stdout
    assert "no backup yet" in r.stdout
    share.mkdir()
    settings.db_path.rename(tmp_path / "moved.db")
    r = run()
    assert r.returncode == 1 and "photobox.db is missing" in r.stdout
