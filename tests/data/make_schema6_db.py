"""Make ``tests/data/photobox-schema6.db``: a small library as the first released photobox wrote it.

The first release's schema is migrations 0001-0006 (never edited, so applying the first six
files reproduces it exactly). The data covers what an upgrade must keep: the owner account
(password ``first release pw``), an API key, uploaded photos and a video with metadata, one in the
trash, a favourite, an album with a cover, named and unnamed people with faces and a user's
correction, and a finished job. Timestamps are fixed so a rerun makes the same rows.

    PYTHONPATH=. python tests/data/make_schema6_db.py        # rewrites the committed file
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from photobox import auth
from photobox.db import connect
from photobox.db.migrate import available, migrate

FIRST_RELEASE_SCHEMA = 6
PASSWORD = "first release pw"
OUT = Path(__file__).with_name("photobox-schema6.db")
T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z


def build(dest: Path) -> Path:
    """Write the schema-6 database with its sample rows to ``dest`` (replaced if present)."""
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "migrations"
        first.mkdir()
        for m in available()[:FIRST_RELEASE_SCHEMA]:
            shutil.copy(m.path, first / m.path.name)
        db = Path(tmp) / "photobox.db"
        conn = connect(db)
        migrate(conn, first)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FIRST_RELEASE_SCHEMA
        with conn:
            fill(conn)
        conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        conn.execute("VACUUM")
        conn.close()
        dest.unlink(missing_ok=True)
        shutil.copy(db, dest)
    return dest


def fill(conn) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES ('secret_key', ?)", ("ab" * 32,))
    auth.set_password(conn, "olivia", auth.hash_password(PASSWORD), now=T0)
    conn.execute("INSERT INTO api_keys (id, name, prefix, key_hash, created_at) VALUES (1, 'phone', 'pbx_abcd', ?, ?)",
                 (bytes(range(32)), T0))
    assets = [
        # id, rel_path, name, kind, mime, taken_at, sort_ts, w, h, lat, lon, make, model, favorite, trashed_at
        (1, "2024/07/IMG_0001.JPG", "IMG_0001.JPG", "image", "image/jpeg", "2024-07-14T10:00:00", T0 - 15_000_000,
         4032, 3024, 48.8584, 2.2945, "Apple", "iPhone 13", 1, None),
        (2, "2024/07/IMG_0002.HEIC", "IMG_0002.HEIC", "image", "image/heic", "2024-07-14T10:05:00", T0 - 14_999_700,
         4032, 3024, 48.8606, 2.3376, "Apple", "iPhone 13", 0, None),
        (3, "2024/08/VID_0003.MP4", "VID_0003.MP4", "video", "video/mp4", "2024-08-01T18:30:00", T0 - 13_500_000,
         1920, 1080, None, None, "Google", "Pixel 7", 0, None),
        (4, "2024/09/IMG_0004.JPG", "IMG_0004.JPG", "image", "image/jpeg", "2024-09-02T09:00:00", T0 - 10_000_000,
         3000, 2000, None, None, None, None, 0, T0 - 100),
    ]
    for (aid, rel, name, kind, mime, taken, sort_ts, w, h, lat, lon, make, model, fav, trashed) in assets:
        conn.execute(
            "INSERT INTO assets (id, library_id, rel_path, original_name, checksum, size, mtime, kind, mime, taken_at,"
            " tz_offset_min, taken_at_source, sort_ts, local_date, width, height, display_width, display_height,"
            " latitude, longitude, make, model, favorite, trashed_at, duration, created_at, updated_at)"
            " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 120, 'exif', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (aid, rel, name, bytes([aid]) * 20, 1000 * aid, sort_ts, kind, mime, taken, sort_ts, taken[:10], w, h, w, h,
             lat, lon, make, model, fav, trashed, 12.5 if kind == "video" else None, T0, T0))
    conn.execute("INSERT INTO albums (id, name, description, cover_asset_id, created_at, updated_at)"
                 " VALUES (1, 'Paris 2024', 'Summer trip', 2, ?, ?)", (T0, T0))
    for aid in (1, 2, 3):
        sort_ts = conn.execute("SELECT sort_ts FROM assets WHERE id = ?", (aid,)).fetchone()[0]
        conn.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) VALUES (1, ?, ?, ?)",
                     (aid, sort_ts, T0))
    conn.execute("INSERT INTO people (id, name, birth_date, created_at, updated_at) VALUES (1, 'Ada', '2019-05-04', ?, ?)",
                 (T0, T0))
    conn.execute("INSERT INTO people (id, name, created_at, updated_at) VALUES (2, '', ?, ?)", (T0, T0))
    faces = [(1, 1, 1, "user"), (2, 2, 1, "auto"), (3, 2, 2, "auto")]
    for fid, aid, pid, by in faces:
        conn.execute("INSERT INTO faces (id, asset_id, person_id, x1, y1, x2, y2, score, assigned_by, model, created_at)"
                     " VALUES (?, ?, ?, 0.1, 0.1, 0.3, 0.4, 0.98, ?, 'sface@2021dec', ?)", (fid, aid, pid, by, T0))
    conn.execute("UPDATE people SET cover_face_id = 1 WHERE id = 1")
    conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (1, 1, 'must', ?)", (T0,))
    conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (3, 1, 'cannot', ?)", (T0,))
    for aid in (1, 2, 3):
        conn.execute("INSERT INTO face_scans (asset_id, model, faces, scanned_at) VALUES (?, 'yunet+sface', ?, ?)",
                     (aid, 2 if aid == 2 else int(aid == 1), T0))
    conn.execute("INSERT INTO jobs (kind, target, state, attempts, created_at, updated_at, finished_at)"
                 " VALUES ('thumbnail', '1', 'done', 1, ?, ?, ?)", (T0, T0, T0))


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
