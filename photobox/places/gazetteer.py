"""The gazetteer's own database file, ``places.db`` in the data folder, ATTACHed as ``geo``.

The towns (GeoNames, about 20 MB in SQLite) are public reference data: they were 98 % of
photobox.db, so every backup copied them again. They live in their own file instead, which
:class:`photobox.db.Database` ATTACHes read-only to every connection under the schema name
:data:`ALIAS`: queries name ``geo_cities`` unqualified and SQLite finds it there. Backups
copy only photobox.db (``main``); ``photobox places install`` makes the file again.

A file is never changed in place. :func:`build` writes ``places.db.new`` on its own
connection (no lock of photobox.db is taken, so uploads and jobs go on), fsyncs it and
renames it over ``places.db``: readers keep the old file open until they re-attach
(``Database`` notices the new inode on the next checkout), an interrupted install leaves
the old file (or none) in place, and nobody ever waits for the load.

What is in a places file: ``geo_cities``, its R*Tree ``geo_cities_xyz`` (see
:mod:`photobox.places.geocoder`) and ``geo_dataset`` (what was loaded, from where, when).
The user's places (``places``, ``asset_places``) stay in photobox.db: they are what the
user's photos say, and backups keep them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import apsw

from photobox.datadir.copy import fsync_dir
from photobox.places.geocoder import to_xyz

__all__ = ["ALIAS", "FILE_NAME", "build", "file_info", "move_out_of_main"]

log = logging.getLogger(__name__)

FILE_NAME = "places.db"
#: The schema name the places file has on every photobox connection.
ALIAS = "geo"
_DATASET_KEY = "places_dataset"
_SCHEMA = """
CREATE TABLE geo_cities (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    admin1        TEXT NOT NULL DEFAULT '',     -- region: state, province, constituent country
    admin2        TEXT NOT NULL DEFAULT '',     -- county, district (often empty)
    country_code  TEXT NOT NULL,                -- ISO 3166-1 alpha-2
    lat           REAL NOT NULL,
    lon           REAL NOT NULL,
    population    INTEGER
) STRICT;
CREATE VIRTUAL TABLE geo_cities_xyz USING rtree(id, minx, maxx, miny, maxy, minz, maxz);
CREATE TABLE geo_dataset (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
PRAGMA user_version = 1;
"""
_BATCH = 5000


def build(dest: Path, rows: Iterable[tuple], *, info: dict) -> int:
    """Write the towns ``rows`` (``name, admin1, admin2, cc, lat, lon, population``) into a
    new places file and swap it in as ``dest``; return how many towns.

    ``info`` (source, url, sha256, licence…) is stored with ``cities`` and ``installed_at``
    added. Runs in the caller's thread for as long as reading ``rows`` takes, holding no
    lock of photobox.db.

    Raises:
        ValueError: ``rows`` held no town (``dest`` is left as it was).
    """
    tmp = dest.with_name(dest.name + ".new")
    for leftover in (tmp, Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    conn = apsw.Connection(str(tmp))
    count = 0
    try:
        # A file no one reads until it is renamed: no journal, no syncs until the fsync below.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(_SCHEMA)
        cities: list[tuple] = []
        boxes: list[tuple] = []

        def flush() -> None:
            with conn:
                conn.executemany("INSERT INTO geo_cities (id, name, admin1, admin2, country_code, lat, lon, "
                                 "population) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", cities)
                conn.executemany("INSERT INTO geo_cities_xyz VALUES (?, ?, ?, ?, ?, ?, ?)", boxes)
            cities.clear()
            boxes.clear()

        for name, admin1, admin2, cc, lat, lon, pop in rows:
            count += 1
            cities.append((count, name, admin1, admin2, cc, lat, lon, pop))
            x, y, z = to_xyz(lat, lon)
            boxes.append((count, x, x, y, y, z, z))
            if len(cities) >= _BATCH:
                flush()
        flush()
        if count == 0:
            raise ValueError("the cities file has no usable rows")
        stored = {**info, "cities": count, "installed_at": info.get("installed_at") or time.time()}
        conn.execute("INSERT INTO geo_dataset (key, value) VALUES (?, ?)", (_DATASET_KEY, json.dumps(stored)))
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return count


def file_info(path: Path) -> dict | None:
    """What the places file at ``path`` holds (as :func:`photobox.places.geocoder.installed`),
    read without photobox.db; None when there is no usable file."""
    if not Path(path).is_file():
        return None
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error:
        return None
    try:
        row = conn.execute("SELECT value FROM geo_dataset WHERE key = ?", (_DATASET_KEY,)).fetchone()
    except apsw.Error:
        return None
    finally:
        conn.close()
    return json.loads(row[0]) if row else None


def move_out_of_main(conn: apsw.Connection) -> None:
    """Data step of migration 0013 (``places_file``): copy the gazetteer an older photobox
    loaded into photobox.db to ``places.db`` beside it, before the migration drops it there.

    Runs outside the migration's transaction and may run again after a crash (it rebuilds
    the file). A places file that already holds a gazetteer (an old backup restored onto a
    box that has one) is kept as it is.
    """
    has_table = conn.execute("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'geo_cities'"
                             ).fetchone()
    row = conn.execute("SELECT value FROM main.meta WHERE key = ?", (_DATASET_KEY,)).fetchone() if has_table else None
    if row is None:
        return  # never installed: nothing to move
    dest = Path(conn.filename).with_name(FILE_NAME)
    if file_info(dest) is not None:
        return
    started = time.monotonic()
    rows = conn.execute("SELECT name, admin1, admin2, country_code, lat, lon, population FROM main.geo_cities "
                        "ORDER BY id")
    count = build(dest, rows, info=json.loads(row[0]))
    log.warning("moved the places data (%d towns) out of photobox.db into %s in %.1fs", count, dest,
                time.monotonic() - started)
