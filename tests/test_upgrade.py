"""Upgrades keep the data; a downgrade refuses a newer database and leaves it untouched.

Starts from ``tests/data/photobox-schema6.db``, a library written by the first released schema
(migrations 0001-0006, made by ``tests/data/make_schema6_db.py``), and opens it with this code.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import apsw
import httpx
import pytest

from photobox import __version__, auth
from photobox.core import Photobox
from photobox.db import connect
from photobox.db.migrate import SchemaTooNewError, available
from tests.data.make_schema6_db import FIRST_RELEASE_SCHEMA, PASSWORD, build
from tests.server import Server

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/data/photobox-schema6.db"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "photobox", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


@pytest.fixture
def old_library(settings) -> Path:
    """The committed first-release database, copied into a fresh data folder."""
    settings.data_dir.mkdir(parents=True)
    shutil.copy(FIXTURE, settings.db_path)
    return settings.db_path


def counts(conn) -> dict[str, int]:
    tables = ["users", "api_keys", "assets", "albums", "album_assets", "people", "faces", "face_constraints",
              "face_scans", "jobs", "meta"]
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


EXPECTED = {"users": 1, "api_keys": 1, "assets": 4, "albums": 1, "album_assets": 3, "people": 2, "faces": 3,
            "face_constraints": 2, "face_scans": 3, "jobs": 1, "meta": 1}


def test_fixture_is_the_first_released_schema(tmp_path):
    conn = apsw.Connection(str(FIXTURE), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_SCHEMA
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")] == \
            [m.name for m in available()[:FIRST_RELEASE_SCHEMA]]
        assert counts(conn) == EXPECTED
    finally:
        conn.close()
    # The generator still reproduces the same schema and rows (it is what the fixture was made with).
    again = build(tmp_path / "again.db")
    conn = apsw.Connection(str(again), flags=apsw.SQLITE_OPEN_READONLY)
    assert counts(conn) == EXPECTED
    conn.close()


def test_upgrade_keeps_everything(settings, old_library):
    latest = available()[-1].version
    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
            # Every row kept; meta may gain rows the newer photobox adds (e.g. its instance id).
            after = counts(conn)
            assert after["meta"] >= EXPECTED["meta"]
            assert {**after, "meta": EXPECTED["meta"]} == EXPECTED
            assert conn.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone() == ("ab" * 32,)
            assert auth.authenticate(conn, "olivia", PASSWORD) is not None
            assert conn.execute("SELECT name, birth_date FROM people WHERE id = 1").fetchone() == ("Ada", "2019-05-04")
            assert conn.execute("SELECT name, cover_asset_id FROM albums").fetchone() == ("Paris 2024", 2)
            assert conn.execute("SELECT count(*) FROM assets WHERE trashed_at IS NOT NULL").fetchone()[0] == 1
            assert conn.execute("SELECT latitude, make FROM assets WHERE id = 1").fetchone() == (48.8584, "Apple")
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert box.secret_key == bytes.fromhex("ab" * 32)  # sessions and links signed before stay valid
    finally:
        box.close()
    backups = sorted((settings.data_dir / "backups").glob("pre-upgrade-*.db"))
    if latest == FIRST_RELEASE_SCHEMA:
        assert backups == []  # nothing to migrate, nothing to back up
    else:
        assert [b.name[:len(f"pre-upgrade-v6-to-v{latest}-")] for b in backups] == [f"pre-upgrade-v6-to-v{latest}-"]
        conn = apsw.Connection(str(backups[0]), flags=apsw.SQLITE_OPEN_READONLY)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_SCHEMA
        assert counts(conn) == EXPECTED
        conn.close()
    # Opening again is a no-op: no second backup.
    Photobox(settings).open().close()
    assert sorted((settings.data_dir / "backups").glob("pre-upgrade-*.db")) == backups


def test_backup_is_taken_before_a_migration_runs(settings, old_library, tmp_path):
    """Whatever the newest migration is, the upgrade path backs up first: add a next one and see."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for m in available():
        shutil.copy(m.path, migrations / m.path.name)
    nxt = available()[-1].version + 1
    (migrations / f"{nxt:04d}_upgrade_probe.sql").write_text("ALTER TABLE albums ADD COLUMN probe TEXT;")
    box = Photobox(settings)
    for sub in ("backups",):
        (settings.data_dir / sub).mkdir(parents=True, exist_ok=True)
    box.db.open(migrations=migrations, before_upgrade=box._backup_before_upgrade)
    box.db.close()
    backups = list((settings.data_dir / "backups").glob(f"pre-upgrade-v6-to-v{nxt}-*.db"))
    assert len(backups) == 1
    conn = apsw.Connection(str(backups[0]), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_SCHEMA
    assert "probe" not in [r[1] for r in conn.execute("PRAGMA table_info(albums)")]
    assert counts(conn) == EXPECTED
    conn.close()


def _make_newer(db: Path, *, wal: bool) -> None:
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    conn.execute(f"PRAGMA user_version = {available()[-1].version + 5}")
    conn.close()


@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_newer_database_is_refused_and_untouched(settings, old_library, wal):
    _make_newer(old_library, wal=wal)
    before = sha256(old_library)
    newer = available()[-1].version + 5

    with pytest.raises(SchemaTooNewError, match=f"schema version {newer}.*newer photobox"):
        Photobox(settings).open()
    assert sha256(old_library) == before

    r = cli("serve", "--data-dir", str(settings.data_dir), "--port", "0")
    assert r.returncode == 2
    assert "written by a newer photobox" in r.stderr and f"photobox {__version__} cannot open" in r.stderr
    assert sha256(old_library) == before

    r = cli("doctor", "--data-dir", str(settings.data_dir))
    assert r.returncode == 1 and f"schema {newer} is newer than this photobox" in r.stdout
    assert sha256(old_library) == before
    assert not list(settings.data_dir.glob("backups/*.db"))


def test_version_flag():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"photobox {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", __version__)


@pytest.mark.e2e
def test_upgraded_library_served(tmp_path):
    """The real server on an upgraded first-release library: the owner logs in and sees the album and people."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURE, data / "photobox.db")
    server = Server(data).start()
    try:
        with httpx.Client(base_url=server.url, follow_redirects=True) as c:
            page = c.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"username": "olivia", "password": PASSWORD, "next": "/albums",
                                       "csrf_token": csrf})
            assert r.url.path == "/albums" and "Paris 2024" in r.text
            assert "Ada" in c.get("/people").text
            assert c.get("/api/server").json()["schema"] == available()[-1].version
    finally:
        server.stop()
    conn = connect(data / "photobox.db", readonly=True)
    # The photo trashed in January 2025 is past trash_days and may be purged; the others stay.
    assert conn.execute("SELECT count(*) FROM assets WHERE trashed_at IS NULL").fetchone()[0] == 3
    conn.close()


def test_upgrade_of_a_damaged_database_is_refused_by_the_verified_backup(settings, old_library):
    """The pre-upgrade copy goes through the one verified copier: a database whose copy fails
    its check is not migrated (the old copier copied the damage and the upgrade went on)."""
    conn = apsw.Connection(str(old_library))
    conn.execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, pad BLOB)")
    conn.executemany("INSERT INTO ballast (pad) VALUES (randomblob(1000))", [()] * 400)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    pages = old_library.stat().st_size // page_size
    with open(old_library, "r+b") as f:  # a ballast leaf page (the newest pages) turns to garbage
        f.seek((pages - 20) * page_size)
        f.write(b"\xa5" * page_size)
    r = cli("backup", "--data-dir", str(settings.data_dir))  # any command opens (and would migrate) it
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not upgraded from schema 6" in r.stderr and "damaged" in r.stderr and "Traceback" not in r.stderr
    conn = apsw.Connection(str(old_library), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_SCHEMA
    conn.close()
    assert not list((settings.data_dir / "backups").iterdir()), "no copy, not even a partial one"
