"""The places (GeoNames) data in its own file, places.db: ATTACHed to every connection, out of
the backups, moved out of photobox.db by migration 0013, and installed without holding
photobox.db's write lock (a new file swapped in)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import apsw

from photobox.core import Photobox
from photobox.db import connect
from photobox.db.migrate import available, migrate
from photobox.places import gazetteer
from photobox.places.geocoder import installed, nearest, to_xyz
from photobox.places.jobs import install
from photobox.safety import backups
from tests.places_data import KNOWN, install_known
from tests.test_backup import run_cli

OLD_SCHEMA = 12  # the last schema that kept the gazetteer in photobox.db


def towns(n: int, seed: int = 3) -> list[tuple]:
    rng = random.Random(seed)
    return [(round(rng.uniform(-60, 70), 5), round(rng.uniform(-180, 180), 5), f"Town {i}", f"Region {i % 50}",
             "", "XX") for i in range(n)] + list(KNOWN)


def old_shape_library(db: Path, rows: list[tuple]) -> None:
    """photobox.db as schema 12 wrote it: the gazetteer inside, a photo placed in Paris."""
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "migrations"
        first.mkdir()
        for m in available()[:OLD_SCHEMA]:
            shutil.copy(m.path, first / m.path.name)
        conn = connect(db)
        migrate(conn, first)
    with conn:  # what the old `places install` did: one transaction into photobox.db
        for i, (lat, lon, name, admin1, admin2, cc) in enumerate(rows, 1):
            conn.execute("INSERT INTO geo_cities (id, name, admin1, admin2, country_code, lat, lon) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (i, name, admin1, admin2, cc, lat, lon))
            x, y, z = to_xyz(lat, lon)
            conn.execute("INSERT INTO geo_cities_xyz VALUES (?, ?, ?, ?, ?, ?, ?)", (i, x, x, y, y, z, z))
        info = {"source": "test towns", "url": "file:", "sha256": "ab" * 32, "licence": "CC BY 4.0, test",
                "cities": len(rows), "installed_at": 1.0}
        conn.execute("INSERT INTO meta (key, value) VALUES ('places_dataset', ?)", (json.dumps(info),))
        conn.execute("INSERT INTO assets (id, library_id, rel_path, original_name, checksum, size, mtime, kind, "
                     "sort_ts, created_at, updated_at, latitude, longitude) VALUES (1, 1, 'a.jpg', 'a.jpg', x'01', "
                     "1, 0, 'image', 0, 0, 0, 48.8584, 2.2945)")
        conn.execute("INSERT INTO places (id, country_code, country, region, city, lat, lon) VALUES "
                     "(7, 'FR', 'France', 'Ile-de-France', 'Paris', 48.85341, 2.3488)")
        conn.execute("INSERT INTO asset_places VALUES (1, 7, 4.2, 48.8584, 2.2945, 1.0)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def tables(path: Path) -> set[str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    finally:
        conn.close()


def test_upgrade_moves_the_gazetteer_out_of_photobox_db(settings):
    rows = towns(20_000)
    settings.data_dir.mkdir(parents=True)
    old_shape_library(settings.db_path, rows)
    old_size = settings.db_path.stat().st_size
    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == available()[-1].version
            assert conn.execute("SELECT count(*) FROM main.sqlite_schema WHERE name LIKE 'geo_%'").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM meta WHERE key = 'places_dataset'").fetchone()[0] == 0
            # Queries keep working unchanged: the towns come from the attached places file.
            assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(rows)
            assert conn.execute("SELECT count(*) FROM geo_cities_xyz").fetchone()[0] == len(rows)
            assert installed(conn)["sha256"] == "ab" * 32 and installed(conn)["cities"] == len(rows)
            assert nearest(conn, 48.8584, 2.2945).name == "Paris"
            # The user's places stay in photobox.db.
            assert conn.execute("SELECT place_id FROM asset_places WHERE asset_id = 1").fetchone() == (7,)
        assert box.attached_path(gazetteer.ALIAS).is_file()
        pre = list((settings.data_dir / "backups").glob("pre-upgrade-v12-to-*.db"))
        assert len(pre) == 1 and "geo_cities" in tables(pre[0]), "the pre-upgrade copy is the old shape, whole"
        backup = backups.make_backup(box)
    finally:
        box.close()
    assert not {"geo_cities", "geo_cities_xyz"} & tables(backup)
    assert backup.stat().st_size < old_size / 4, (backup.stat().st_size, old_size)  # the freed pages are gone
    assert settings.db_path.stat().st_size < old_size / 4
    # Opening again changes nothing and keeps the file.
    before = hashlib.sha256(box.attached_path(gazetteer.ALIAS).read_bytes()).hexdigest()
    Photobox(settings).open().close()
    assert hashlib.sha256(box.attached_path(gazetteer.ALIAS).read_bytes()).hexdigest() == before


def test_an_old_backup_restored_next_to_a_places_file_keeps_that_file(settings, tmp_path):
    """The data step runs again for a restored old-shape database: an installed places file wins."""
    box = Photobox(settings).open()
    install_known(box, tmp_path, KNOWN[:3])
    box.close()
    old = tmp_path / "old.db"
    old_shape_library(old, towns(50))
    r = run_cli("restore", str(old), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stderr
    assert "places install" not in r.stdout  # a places file is there: nothing to re-install
    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            assert installed(conn)["cities"] == 3
            assert conn.execute("SELECT count(*) FROM main.sqlite_schema WHERE name LIKE 'geo_%'").fetchone()[0] == 0
    finally:
        box.close()


def test_backups_leave_the_places_out_and_a_restore_says_how_to_get_them(settings, tmp_path):
    box = Photobox(settings).open()
    install_known(box, tmp_path)
    backup = backups.make_backup(box)
    box.close()
    assert "geo_cities" not in tables(backup) and "geo_dataset" not in tables(backup)
    # The same box: the places file is there, nothing to re-install.
    r = run_cli("restore", str(backup), "--data-dir", str(settings.data_dir))
    assert r.returncode == 0 and "places install" not in r.stdout, r.stdout + r.stderr
    box = Photobox(settings).open()
    with box.db.reader() as conn:
        assert nearest(conn, 52.5163, 13.3777).name == "Berlin"
    box.close()
    # A new box (or a lost data folder): the restore says how to get the places back.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    r = run_cli("restore", str(backup), "--data-dir", str(fresh))
    assert r.returncode == 0, r.stderr
    assert "`photobox places install`" in r.stdout
    r = run_cli("places", "status", "--data-dir", str(fresh))
    assert "not installed" in r.stdout


def test_a_reinstall_swaps_the_file_under_open_readers(box, tmp_path):
    install_known(box, tmp_path)
    with box.db.reader() as conn:  # every pooled reader has the first file attached now
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(KNOWN)
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    install_known(box, smaller, KNOWN[:3])
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == 3
    with box.db.transaction() as conn:
        assert installed(conn)["cities"] == 3
    assert not list(box.data_dir.glob("places.db.*")), "no temp file left"


def test_install_never_holds_the_write_lock_for_long(box, tmp_path):
    """`places install --force` used to load in one write transaction (~13 s on a Pi), stalling
    every upload. It now writes its own file: other writers keep going all along."""
    rows = towns(100_000)
    csv = tmp_path / "towns.csv"
    with open(csv, "w") as f:
        f.write("lat,lon,name,admin1,admin2,cc\n")
        f.writelines(f"{lat},{lon},{name},{a1},{a2},{cc}\n" for lat, lon, name, a1, a2, cc in rows)
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    install(box, path=csv, sha256=sha)
    done = threading.Event()
    errors: list[BaseException] = []

    def reinstall() -> None:
        try:
            install(box, path=csv, sha256=sha, force=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=reinstall)
    started = time.monotonic()
    thread.start()
    waits = []
    while not done.is_set():
        t0 = time.monotonic()
        with box.db.transaction() as conn:  # what an upload's commit does
            conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('w', 0, 0)")
        waits.append(time.monotonic() - t0)
        time.sleep(0.02)
    thread.join()
    took = time.monotonic() - started
    assert not errors, errors
    assert took > 1.0, f"the install took only {took:.2f}s: too fast to tell"
    assert len(waits) > 10 and max(waits) < 0.5, (f"install {took:.1f}s, {len(waits)} writes, "
                                                  f"longest wait {max(waits):.2f}s")
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(rows)
