"""The Backups and Library health pages: list, back up now, staged restore (with CSRF and
confirmation), uploading a backup, and the storage banner."""

from __future__ import annotations

import time

from bs4 import BeautifulSoup

from photobox.datadir import restore
from photobox.safety import backups
from tests.conftest import csrf_from


def wait_for_backup(box, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = backups.list_backups(box.path("backups"))
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no backup was made")


def test_backup_now_and_restore_is_staged_with_confirmation(owner_client):
    box = owner_client.app.state.photobox
    page = owner_client.get("/settings/backups")
    assert page.status_code == 200 and "No backups yet" in page.text
    token = csrf_from(page.text)
    assert owner_client.post("/settings/backups", data={}).status_code == 403  # CSRF required
    r = owner_client.post("/settings/backups", data={"csrf_token": token})
    assert r.status_code == 201 or r.status_code == 200, r.text
    made = wait_for_backup(box)
    page = owner_client.get("/settings/backups")
    soup = BeautifulSoup(page.text, "html.parser")
    rows = soup.select("table.backups tbody tr")
    assert len(rows) == 1 and "verified when made" in rows[0].text
    assert owner_client.get(f"/settings/backups/{made[0].name}").content[:16] == b"SQLite format 3\x00"
    assert owner_client.get("/settings/backups/..%2Fphotobox.db").status_code == 404
    # Restoring needs the confirmation box.
    r = owner_client.post("/settings/backups/restore", data={"csrf_token": token, "name": made[0].name})
    assert r.status_code == 400 and "confirm" in r.text
    assert not (box.data_dir / restore.STAGED_NAME).exists()
    r = owner_client.post("/settings/backups/restore", data={"csrf_token": token, "name": made[0].name,
                                                             "confirm": "yes"})
    assert r.status_code in (200, 201) and "restarts" in r.text
    assert (box.data_dir / restore.STAGED_NAME).exists(), "staged, not applied under the running server"
    assert "A restore is waiting" in owner_client.get("/settings/backups").text
    r = owner_client.post("/settings/backups/cancel-restore", data={"csrf_token": token})
    assert not (box.data_dir / restore.STAGED_NAME).exists()


def test_upload_a_backup_file_to_restore(owner_client, tmp_path):
    box = owner_client.app.state.photobox
    good = backups.make_backup(box, tmp_path / "kept-elsewhere.db", sidecar=False)
    token = csrf_from(owner_client.get("/settings/backups").text)
    r = owner_client.post("/settings/backups/upload", headers={"X-CSRF-Token": token},
                          files={"file": ("kept.db", good.read_bytes(), "application/octet-stream")},
                          data={"confirm": "yes"})
    assert r.status_code in (200, 201), r.text
    assert (box.data_dir / restore.STAGED_NAME).exists()
    (box.data_dir / restore.STAGED_NAME).unlink()
    r = owner_client.post("/settings/backups/upload", headers={"X-CSRF-Token": token},
                          files={"file": ("bad.db", b"hello" * 1000, "application/octet-stream")},
                          data={"confirm": "yes"})
    assert r.status_code == 400 and "not an SQLite database" in r.text
    assert not (box.data_dir / restore.STAGED_NAME).exists()
    # Only this process's owner lock (photobox.datadir.storage) may remain in tmp/.
    assert not [p for p in box.path("tmp").iterdir() if not p.name.startswith("owner-")], "the upload is not kept"


def test_health_page_lists_findings_and_banner_shows_missing_folders(owner_client, tmp_path):
    box = owner_client.app.state.photobox
    with box.db.transaction() as conn:
        conn.execute("INSERT INTO integrity_issues (kind, library_id, rel_path, detail, first_seen, last_seen) "
                     "VALUES ('orphan', 1, '2020/stray.jpg', 'a file no photo points to', 0, 0)")
    page = owner_client.get("/settings/health")
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    assert "2020/stray.jpg" in soup.select_one("table.issues").text
    assert soup.select_one(".storage-banner") is None
    box.storage_problems = ["The library folder /mnt/nas (NAS) is missing: is the disk or share mounted?"]
    page = owner_client.get("/")
    banner = BeautifulSoup(page.text, "html.parser").select_one(".storage-banner")
    assert banner is not None and "/mnt/nas" in banner.text
    assert "Storage missing" in owner_client.get("/settings/health").text
    assert "/settings/backups" in owner_client.get("/settings").text


def test_health_page_shows_pass_progress(owner_client, tmp_path):
    from photobox.library.commands import import_one as _import_one
    from photobox.safety import integrity
    from tests.gen import jpeg_bytes

    box = owner_client.app.state.photobox
    for i in range(2):  # the app's own scheduler makes the thumbnails meanwhile
        src = tmp_path / f"IMG_{i}.jpg"
        src.write_bytes(jpeg_bytes(seed=i))
        _import_one(box, src)
    integrity.run_pass(box)
    page = owner_client.get("/settings/health")
    assert "Last complete check" in page.text and "(2 originals)" in page.text
    assert "every original checked out" in page.text
    integrity._BATCH = 1
    try:
        integrity.run_slice(box, budget_seconds=0.000001, spread=False)  # a new pass, part done
    finally:
        integrity._BATCH = 100
    page = owner_client.get("/settings/health")
    assert "Current check" in page.text and "1 of 2 originals checked" in page.text
    assert "Last complete check" in page.text
