"""Backups: verified online copies with retention, the JSON sidecar and its round trip,
staged restores with a restore point, and refusing what must be refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photobox.core import Photobox
from photobox.datadir import StorageMissingError, restore
from photobox.datadir.copy import BackupError, verify_database_file
from photobox.db import connect
from photobox.safety import backups, sidecar
from tests.gen import jpeg_bytes

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "photobox", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=300)


def import_files(box, tmp_path, n=4):
    from photobox.library.commands import import_one as _import_one

    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    ids = []
    for i in range(n):
        path = src / f"IMG_{i:04d}.jpg"
        path.write_bytes(jpeg_bytes(seed=i, taken=f"2021:07:{10 + i:02d} 12:00:00"))
        ids.append(_import_one(box, path).asset_id)
    asyncio.run(box.scheduler.run_until_idle())
    return ids


def user_state(box):
    """What the user did, keyed by checksum (ids change in a rebuild)."""
    with box.db.reader() as conn:
        assets = {cs.hex(): (fav, arch, trashed is not None, desc) for cs, fav, arch, trashed, desc in conn.execute(
            "SELECT checksum, favorite, archived, trashed_at, description FROM assets")}
        albums = {name: sorted(cs.hex() for (cs,) in conn.execute(
            "SELECT a.checksum FROM album_assets aa JOIN assets a ON a.id = aa.asset_id WHERE aa.album_id = ?", (aid,)))
            for aid, name in conn.execute("SELECT id, name FROM albums").fetchall()}
    return assets, albums


def test_backup_is_verified_whole_and_has_a_sidecar(box, tmp_path):
    ids = import_files(box, tmp_path, 2)
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET favorite = 1 WHERE id = ?", (ids[0],))
    dest = backups.make_backup(box)
    assert dest.name.startswith("photobox-") and dest.suffix == ".db"
    assert not list(dest.parent.glob("*.partial"))
    info = verify_database_file(dest, full=True)
    assert info["assets"] == 2 and info["check"] == "ok"
    conn = connect(dest, readonly=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # self-contained, no -wal needed
    conn.close()
    data = json.loads(dest.with_suffix(".json").read_text())
    assert data["format"] == "photobox-sidecar" and data["version"] == 1
    assert [a["favorite"] for a in data["assets"].values()] == [True]
    listed = backups.list_backups(box.path("backups"))
    assert [b.path for b in listed] == [dest] and listed[0].scheduled and listed[0].sidecar


def test_backup_while_writing_is_a_consistent_snapshot(box, tmp_path):
    import threading

    with box.db.transaction() as conn:
        conn.execute("CREATE TABLE t (x INTEGER, pad BLOB)")
        conn.executemany("INSERT INTO t VALUES (?, randomblob(2000))", [(i,) for i in range(3000)])
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            with box.db.transaction() as conn:  # each transaction keeps count(*) a multiple of 10
                conn.executemany("INSERT INTO t VALUES (?, randomblob(2000))", [(i,)] * 10)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        dest = backups.make_backup(box, pause=0.001)
    finally:
        stop.set()
        thread.join()
    conn = connect(dest, readonly=True)
    count = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    conn.close()
    assert count >= 3000 and count % 10 == 0


def test_retention_keeps_dailies_and_first_of_month(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    start = 1_700_000_000  # 2023-11-14
    made = []
    for day in range(120):  # two backups a day for 120 days
        for hour in (3, 15):
            ts = start + day * 86400 + hour * 3600
            path = folder / f"photobox-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(ts))}.db"
            path.write_bytes(b"x")
            path.with_suffix(".json").write_text("{}")
            made.append((ts, path))
    (folder / "pre-upgrade-v5-to-v6-20231101-000000.db").write_bytes(b"x")
    deleted = backups.apply_retention(folder, daily_keep=14, monthly_keep=3)
    kept = {b.path for b in backups.list_backups(folder) if b.scheduled}
    newest_days = sorted({time.strftime("%Y%m%d", time.gmtime(ts)) for ts, _ in made})[-14:]
    for day in newest_days:  # the newest backup of each of the last 14 days
        assert max((p for ts, p in made if time.strftime("%Y%m%d", time.gmtime(ts)) == day), key=str) in kept
    months = sorted({time.strftime("%Y%m", time.gmtime(ts)) for ts, _ in made})[-3:]
    for month in months:  # the first backup of each of the last 3 months
        assert min((p for ts, p in made if time.strftime("%Y%m", time.gmtime(ts)) == month), key=str) in kept
    assert len(kept) <= 14 + 3
    assert len(deleted) == len(made) - len(kept)
    assert not any(p.with_suffix(".json").exists() for p in deleted), "the sidecar goes with its backup"
    assert (folder / "pre-upgrade-v5-to-v6-20231101-000000.db").exists(), "pre-upgrade backups are never pruned"


def test_scheduled_backup_runs_as_a_job_when_due(settings, clock):
    box = Photobox(settings, clock=clock).open()
    try:
        assert asyncio.run(backups.queue_backup_if_due(box)) is False  # an empty new library
        with box.db.transaction() as conn:
            conn.execute("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, "
                         "sort_ts, created_at, updated_at) VALUES (1, 'a.jpg', 'a.jpg', x'00', 1, 0, 'image', 0, 0, 0)")
        assert asyncio.run(backups.queue_backup_if_due(box)) is True
        asyncio.run(box.scheduler.run_until_idle())
        assert len(backups.list_backups(box.path("backups"))) == 1
        clock.advance(3600)
        assert asyncio.run(backups.queue_backup_if_due(box)) is False  # made an hour ago
        clock.advance(23 * 3600)
        assert asyncio.run(backups.queue_backup_if_due(box)) is True
        asyncio.run(box.scheduler.run_until_idle())
        assert len(backups.list_backups(box.path("backups"))) == 2
    finally:
        box.close()


def test_verify_refuses_what_is_not_a_usable_photobox_db(box, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not an SQLite database"):
        verify_database_file(junk)
    other = tmp_path / "other.db"
    conn = connect(other)
    conn.execute("CREATE TABLE x (y)")
    conn.close()
    with pytest.raises(BackupError, match="not a photobox database"):
        verify_database_file(other)
    newer = backups.make_backup(box, tmp_path / "newer.db", sidecar=False)
    conn = connect(newer)
    conn.execute("PRAGMA user_version = 999")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    with pytest.raises(BackupError, match="newer photobox"):
        verify_database_file(newer)
    damaged = backups.make_backup(box, tmp_path / "damaged.db", sidecar=False)
    raw = bytearray(damaged.read_bytes())
    page = 4096
    for offset in range(page * 3, len(raw) - page, page):  # scribble over the b-tree pages
        raw[offset:offset + 64] = b"\xff" * 64
    damaged.write_bytes(bytes(raw))
    with pytest.raises(BackupError):
        verify_database_file(damaged, full=True)


def test_cli_restore_refuses_a_newer_database(box, tmp_path, settings):
    newer = backups.make_backup(box, tmp_path / "newer.db", sidecar=False)
    conn = connect(newer)
    conn.execute("PRAGMA user_version = 999")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    box.close()
    r = run_cli("restore", str(newer), "--data-dir", str(settings.data_dir))
    assert r.returncode == 2 and "newer photobox" in r.stderr
    assert not (settings.data_dir / restore.STAGED_NAME).exists()


def test_cli_backup_and_restore_with_restore_point(box, tmp_path, settings):
    ids = import_files(box, tmp_path, 2)
    box.close()
    r = run_cli("backup", "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stderr
    backup = next(box.path("backups").glob("photobox-*.db"))
    box = Photobox(settings).open()
    with box.db.transaction() as conn:  # a change made after the backup…
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('after', 0, 0)")
        conn.execute("DELETE FROM assets WHERE id = ?", (ids[0],))
    # …left in the WAL, not checkpointed: the restore must not replay it onto the backup.
    keep_open = connect(settings.db_path)
    keep_open.execute("PRAGMA wal_autocheckpoint=0")
    box.close()
    keep_open.close()
    r = run_cli("restore", str(backup), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stderr
    assert "restored" in r.stdout
    points = list(box.path("backups").glob("pre-restore-*.db"))
    assert len(points) == 1
    box = Photobox(settings).open()
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM albums WHERE name = 'after'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 2
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    box.close()
    point = connect(points[0], readonly=True)  # the restore point has the state before the restore
    assert point.execute("SELECT count(*) FROM albums WHERE name = 'after'").fetchone()[0] == 1
    point.close()


def test_restore_is_staged_while_a_server_holds_the_folder(box, tmp_path, settings):
    import_files(box, tmp_path, 1)
    backup = backups.make_backup(box)
    with box.db.transaction() as conn:
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('later', 0, 0)")
    box.close()
    server = restore.ServerLock(settings.data_dir)
    assert server.acquire()  # what a running server holds
    try:
        r = run_cli("restore", str(backup), "--data-dir", str(settings.data_dir))
        assert r.returncode == 0, r.stderr
        assert "staged" in r.stdout and "next start" in r.stdout
        assert (settings.data_dir / restore.STAGED_NAME).exists()
        # A CLI command meanwhile must not swap the database under the server.
        other = Photobox(settings).open()
        other.close()
        assert (settings.data_dir / restore.STAGED_NAME).exists()
    finally:
        server.release()
    box = Photobox(settings)
    box.serving = True
    box.open()  # the next server start applies it
    try:
        assert not (settings.data_dir / restore.STAGED_NAME).exists()
        with box.db.reader() as conn:
            assert conn.execute("SELECT count(*) FROM albums WHERE name = 'later'").fetchone()[0] == 0
        assert restore.server_running(settings.data_dir)
    finally:
        box.close()
    assert not restore.server_running(settings.data_dir)


def _add_people(box, ids):
    """Faces as the face stage would make them (no models in tests), one named person."""
    with box.db.transaction() as conn:
        conn.execute("INSERT INTO people (id, name, birth_date, created_at, updated_at) VALUES "
                     "(1, 'Grandma', '1940-02-03', 0, 0)")
        conn.execute("INSERT INTO people (id, name, hidden, created_at, updated_at) VALUES (2, '', 1, 0, 0)")
        conn.execute("INSERT INTO people (id, name, created_at, updated_at) VALUES (3, '', 0, 0)")  # auto cluster
        faces = [(10, ids[0], 1, 0.1, 0.1, 0.3, 0.4, "user"), (11, ids[1], 1, 0.5, 0.5, 0.7, 0.8, "auto"),
                 (12, ids[2], 2, 0.2, 0.2, 0.4, 0.4, "auto"), (13, ids[2], 3, 0.6, 0.1, 0.8, 0.3, "auto")]
        conn.executemany("INSERT INTO faces (id, asset_id, person_id, x1, y1, x2, y2, score, assigned_by, model, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0.9, ?, 'test@1', 0)", faces)
        conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (10, 1, 'must', 0)")
        conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (13, 1, 'cannot', 0)")
        conn.execute("UPDATE people SET cover_face_id = 10 WHERE id = 1")


def test_sidecar_round_trip_after_losing_the_database(settings, tmp_path):
    from photobox.library import albums, assets
    from photobox.safety import integrity

    box = Photobox(settings).open()
    ids = import_files(box, tmp_path, 4)
    with box.db.transaction() as conn:
        now = box.clock()
        assets.apply_action(conn, "favorite", [ids[0], ids[1]], now=now)
        assets.apply_action(conn, "archive", [ids[2]], now=now)
        assets.apply_action(conn, "trash", [ids[3]], now=now)
        conn.execute("UPDATE assets SET description = 'The lake, at dawn' WHERE id = ?", (ids[1],))
        album = albums.create_album(conn, "Summer 2021", now=now)
        albums.add_to_album(conn, album, [ids[0], ids[2]], now=now)
        albums.create_album(conn, "Empty one", now=now)
    _add_people(box, ids)
    before = user_state(box)
    export = box.path("export.json")
    with box.db.reader() as conn:
        export.write_text(json.dumps(sidecar.export(conn)))
    box.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(settings.db_path) + suffix).unlink(missing_ok=True)

    with pytest.raises(StorageMissingError, match="photobox.db is missing"):
        Photobox(settings).open()  # a lost database is not silently replaced by an empty one

    box = Photobox(settings)
    box.allow_new_database = True  # what `photobox rebuild` does
    box.open()
    try:
        assert integrity.adopt_orphans(box) == 4
        asyncio.run(box.scheduler.run_until_idle())
        stats = sidecar.apply_file(box, export)
        assert stats["assets_missing"] == 0 and stats["faces_missing"] == 3  # no face detection has run yet
        assert user_state(box) == before
        assert sidecar.apply_file(box, export)["albums"] == 0  # idempotent: nothing new the second time
        assert user_state(box) == before
        # Face detection runs again later and finds the same faces with slightly different boxes.
        with box.db.reader() as conn:
            new_ids = {cs.hex(): i for i, cs in conn.execute("SELECT id, checksum FROM assets")}
        data = json.loads(export.read_text())
        with box.db.transaction() as conn:
            conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('', 0, 0)")
            auto = conn.last_insert_rowid()
            for person in data["people"]:
                for face in person["faces"]:
                    x1, y1, x2, y2 = face["box"]
                    conn.execute("INSERT INTO faces (asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, 0.9, 'test@1', 0)",
                                 (new_ids[face["asset"]], auto, x1 + 0.01, y1 + 0.01, x2 + 0.005, y2, ))
            for c in data["constraints"]:
                if c["kind"] == "cannot":
                    x1, y1, x2, y2 = c["box"]
                    conn.execute("INSERT INTO faces (asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                                 "VALUES (?, NULL, ?, ?, ?, ?, 0.9, 'test@1', 0)", (new_ids[c["asset"]], x1, y1, x2, y2))
        stats = sidecar.apply_file(box, export)
        assert stats["faces_missing"] == 0 and stats["faces"] == 3
        with box.db.reader() as conn:
            grandma = conn.execute("SELECT id, birth_date, cover_face_id FROM people WHERE name = 'Grandma'").fetchone()
            assert grandma[1] == "1940-02-03" and grandma[2] is not None
            faces = conn.execute("SELECT count(*), sum(assigned_by = 'user') FROM faces WHERE person_id = ?",
                                 (grandma[0],)).fetchone()
            assert faces == (2, 1)
            assert conn.execute("SELECT count(*) FROM people WHERE hidden = 1").fetchone()[0] == 1
            kinds = sorted(k for (k,) in conn.execute("SELECT kind FROM face_constraints WHERE person_id = ?",
                                                      (grandma[0],)))
            assert kinds == ["cannot", "must"]
        assert sidecar.apply_file(box, export)["faces_missing"] == 0
        with box.db.reader() as conn:
            assert conn.execute("SELECT count(*) FROM people WHERE name = 'Grandma'").fetchone()[0] == 1
    finally:
        box.close()


def test_sidecar_refuses_other_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(sidecar.SidecarError, match="not a photobox sidecar"):
        sidecar.load_file(bad)
    bad.write_text('{"format": "photobox-sidecar", "version": 99}')
    with pytest.raises(sidecar.SidecarError, match="version 99"):
        sidecar.load_file(bad)


def test_cli_rebuild_from_files_and_sidecar(settings, tmp_path):
    box = Photobox(settings).open()
    ids = import_files(box, tmp_path, 3)
    share = tmp_path / "nas"
    share.mkdir()
    (share / "far.jpg").write_bytes(jpeg_bytes(seed=77))
    from photobox.library import albums, assets, libraries

    with box.db.transaction() as conn:
        lib = libraries.add_library(conn, share, now=box.clock(), data_dir=box.data_dir, name="NAS")
    libraries.scan_library(box, lib)
    asyncio.run(box.scheduler.run_until_idle())
    with box.db.transaction() as conn:
        far = conn.execute("SELECT id FROM assets WHERE library_id = ?", (lib,)).fetchone()[0]
        assets.apply_action(conn, "favorite", [ids[0], far], now=box.clock())
        album = albums.create_album(conn, "Trip", now=box.clock())
        albums.add_to_album(conn, album, [ids[1], far], now=box.clock())
    before = user_state(box)
    backup = backups.make_backup(box)
    box.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(settings.db_path) + suffix).unlink(missing_ok=True)
    r = run_cli("jobs", "--data-dir", str(settings.data_dir))
    assert r.returncode == 2 and "photobox.db is missing" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("rebuild", "--sidecar", str(backup.with_suffix(".json")), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stderr
    assert "indexing 3 files" in r.stdout and "scanning 1 library folder" in r.stdout
    box = Photobox(settings).open()
    try:
        assert user_state(box) == before
        with box.db.reader() as conn:
            assert conn.execute("SELECT name FROM libraries WHERE kind = 'external'").fetchone()[0] == "NAS"
    finally:
        box.close()


def test_rebuild_keeps_the_web_setup_closed_until_the_owner_is_set_on_the_box(settings, tmp_path):
    """After a rebuild nobody owns the library; the first visitor on the LAN must not become its
    owner. The setup page stays closed (403, says what to run) until `user set-password`."""
    from litestar.testing import TestClient

    from photobox import auth
    from photobox.web.app import create_app
    from tests.conftest import PASSWORD, csrf_from

    box = Photobox(settings).open()
    import_files(box, tmp_path, 2)
    box.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(settings.db_path) + suffix).unlink(missing_ok=True)
    r = subprocess.run([sys.executable, "-m", "photobox", "rebuild", "--data-dir", str(settings.data_dir)], cwd=ROOT,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "run `photobox user set-password`" in r.stdout
    assert "API keys" in r.stdout and "share links" in r.stdout and "WebDAV" in r.stdout  # what is not back
    with TestClient(app=create_app(settings)) as client:
        login = client.get("/login", follow_redirects=True)
        assert login.status_code == 403 and "photobox user set-password" in login.text
        page = client.get("/setup")
        assert page.status_code == 403 and 'name="password2"' not in page.text
        # Even a valid anonymous CSRF token (a form opened before, a script) creates nobody.
        client.cookies.set("pb_anon", "a" * 32)
        token = auth.anonymous_csrf_token(client.app.state.photobox.secret_key, "a" * 32)
        sneaky = client.post("/setup", data={"username": "mallory", "password": PASSWORD, "password2": PASSWORD,
                                             "csrf_token": token}, follow_redirects=False)
        assert sneaky.status_code == 403 and "photobox user set-password" in sneaky.text
        with client.app.state.photobox.db.reader() as conn:
            assert auth.get_owner(conn) is None and conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 2
    r = run_cli("user", "set-password", "--username", "olivia", "--password-from-env", "--data-dir",
                str(settings.data_dir), env={"PHOTOBOX_NEW_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    with TestClient(app=create_app(settings)) as client:
        page = client.get("/login")
        assert page.status_code == 200
        ok = client.post("/login", data={"username": "olivia", "password": PASSWORD, "next": "/",
                                         "csrf_token": csrf_from(page.text)}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/"


def test_rebuild_asks_for_the_owner_on_a_terminal(settings, tmp_path):
    import pty

    from photobox import auth
    from tests.conftest import PASSWORD

    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "library").mkdir()
    import select

    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "photobox", "rebuild", "--data-dir", str(settings.data_dir)],
                            cwd=ROOT, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    os.close(secondary)
    seen = b""

    def answer(prompt: bytes, text: str) -> None:  # getpass flushes typed-ahead input: wait for each prompt
        nonlocal seen
        deadline = time.monotonic() + 120
        while prompt not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen
            if select.select([proc.stderr], [], [], 1)[0]:
                seen += os.read(proc.stderr.fileno(), 4096)
        seen = seen.split(prompt, 1)[1]
        os.write(primary, f"{text}\n".encode())

    try:
        os.write(primary, b"olivia\n")
        answer(b"New password: ", PASSWORD)
        answer(b"Again: ", PASSWORD)
        out, err = proc.communicate(timeout=300)
        out = out.decode()
    finally:
        os.close(primary)
    assert proc.returncode == 0, err
    assert "owner olivia created" in out and "user set-password` on this machine" not in out
    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            assert auth.authenticate(conn, "olivia", PASSWORD) is not None
    finally:
        box.close()


def test_restore_over_a_damaged_database_keeps_its_files(box, tmp_path, settings):
    import_files(box, tmp_path, 1)
    backup = backups.make_backup(box)
    box.close()
    raw = bytearray(settings.db_path.read_bytes())
    for offset in range(4096 * 2, len(raw) - 4096, 4096):
        raw[offset:offset + 100] = b"\x00garbage" * 12 + b"\x00" * 4
    settings.db_path.write_bytes(bytes(raw))
    r = run_cli("restore", str(backup), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stderr
    assert list(box.path("backups").glob("pre-restore-*-damaged.db")), "the damaged database is kept, moved aside"
    box = Photobox(settings).open()
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 1
    box.close()


def test_cli_backup_to_a_file_and_sidecar_export(box, tmp_path, settings):
    import_files(box, tmp_path, 1)
    box.close()
    dest = tmp_path / "usb" / "copy.db"
    dest.parent.mkdir()
    r = run_cli("backup", "--to", str(dest), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0 and "verified" in r.stdout, r.stderr
    assert verify_database_file(dest)["assets"] == 1 and dest.with_suffix(".json").exists()
    r = run_cli("backup", "--to", str(dest), "--data-dir", str(settings.data_dir))
    assert r.returncode == 2 and "exists" in r.stderr  # never overwrites
    r = run_cli("sidecar", "export", "--data-dir", str(settings.data_dir))
    assert r.returncode == 0 and json.loads(r.stdout)["format"] == "photobox-sidecar"
