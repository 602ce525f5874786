"""What a user does to assets: favourite, archive, trash, restore, delete for good, albums.

Originals are never touched except by :func:`purge`, which runs only for assets already in
the trash (an explicit "delete permanently" or the trash's own expiry) and deletes the
original only for uploaded files: files of external libraries are never deleted by photobox.
A Live Photo's video follows its still everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import apsw

from photobox.library.paths import DERIVED, UPLOAD_LIBRARY_ID, derived_path, original_path

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["ACTIONS", "add_to_album", "apply_action", "create_album", "purge", "remove_from_album",
           "expired_trash"]

log = logging.getLogger(__name__)

# action -> SQL that applies it to the assets in the temp table `sel`
ACTIONS = {
    "favorite": "UPDATE assets SET favorite = 1, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "unfavorite": "UPDATE assets SET favorite = 0, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "archive": "UPDATE assets SET archived = 1, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "unarchive": "UPDATE assets SET archived = 0, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "trash": "UPDATE assets SET trashed_at = :now, updated_at = :now WHERE trashed_at IS NULL "
             "AND id IN (SELECT id FROM sel)",
    "restore": "UPDATE assets SET trashed_at = NULL, updated_at = :now WHERE id IN (SELECT id FROM sel)",
}


def _select(conn: apsw.Connection, ids: Iterable[int]) -> int:
    """Fill the temp table ``sel`` with the ids and their Live Photo videos; return the count."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sel (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM sel")
    conn.executemany("INSERT OR IGNORE INTO sel (id) VALUES (?)", [(int(i),) for i in ids])
    conn.execute("INSERT OR IGNORE INTO sel (id) SELECT id FROM assets WHERE motion_of IN (SELECT id FROM sel)")
    return conn.execute("SELECT count(*) FROM sel").fetchone()[0]


def apply_action(conn: apsw.Connection, action: str, ids: Iterable[int], *, now: float) -> int:
    """Apply one of :data:`ACTIONS` to ``ids``; returns how many assets it touched."""
    sql = ACTIONS[action]
    _select(conn, ids)
    conn.execute(sql, {"now": now})
    return conn.changes()


def create_album(conn: apsw.Connection, name: str, *, now: float) -> int:
    """A new, empty album; returns its id."""
    name = name.strip()[:200] or "Untitled album"
    conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES (?, ?, ?)", (name, now, now))
    return conn.last_insert_rowid()


def add_to_album(conn: apsw.Connection, album_id: int, ids: Iterable[int], *, now: float) -> int:
    """Add assets to an album (already there: unchanged); returns how many were added."""
    ids = [int(i) for i in ids]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sel (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM sel")
    conn.executemany("INSERT OR IGNORE INTO sel (id) VALUES (?)", [(i,) for i in ids])
    conn.execute(
        "INSERT OR IGNORE INTO album_assets (album_id, asset_id, sort_ts, added_at) "
        "SELECT ?, a.id, a.sort_ts, ? FROM assets a WHERE a.id IN (SELECT id FROM sel) AND a.motion_of IS NULL",
        (album_id, now),
    )
    added = conn.changes()
    conn.execute("UPDATE albums SET updated_at = ?, cover_asset_id = coalesce(cover_asset_id, ?) WHERE id = ?",
                 (now, ids[0] if ids else None, album_id))
    return added


def remove_from_album(conn: apsw.Connection, album_id: int, ids: Iterable[int], *, now: float) -> int:
    """Take assets out of an album (they stay in the library)."""
    ids = [int(i) for i in ids]
    conn.executemany("DELETE FROM album_assets WHERE album_id = ? AND asset_id = ?", [(album_id, i) for i in ids])
    conn.execute("UPDATE albums SET updated_at = ?, cover_asset_id = CASE WHEN cover_asset_id IN "
                 "(SELECT asset_id FROM album_assets WHERE album_id = ?) THEN cover_asset_id ELSE "
                 "(SELECT asset_id FROM album_assets WHERE album_id = ? ORDER BY sort_ts DESC LIMIT 1) END "
                 "WHERE id = ?", (now, album_id, album_id, album_id))
    return len(ids)


def expired_trash(conn: apsw.Connection, *, before: float, limit: int = 500) -> list[int]:
    """Ids of assets that have been in the trash since before ``before``."""
    return [i for (i,) in conn.execute(
        "SELECT id FROM assets WHERE trashed_at IS NOT NULL AND trashed_at < ? ORDER BY trashed_at LIMIT ?",
        (before, limit))]


def purge(box: Photobox, ids: Iterable[int]) -> int:
    """Delete trashed assets for good: rows, derived files, and uploaded originals.

    Only assets already in the trash are purged. The row goes first (in one transaction),
    then the files: a crash in between leaves an orphan file, which the integrity check
    reports, never a row pointing at nothing.
    """
    doomed: list[tuple[int, int, str]] = []
    with box.db.transaction() as conn:
        _select(conn, ids)
        rows = conn.execute("SELECT a.id, a.library_id, a.rel_path FROM assets a JOIN sel ON sel.id = a.id "
                            "WHERE a.trashed_at IS NOT NULL").fetchall()
        originals = []
        for asset_id, library_id, rel_path in rows:
            originals.append((asset_id, library_id, original_path(box, conn, library_id, rel_path)))
            conn.execute("DELETE FROM library_files WHERE asset_id = ? AND library_id = ?", (asset_id, UPLOAD_LIBRARY_ID))
            conn.execute("UPDATE assets SET motion_of = NULL WHERE motion_of = ?", (asset_id,))
            conn.execute("DELETE FROM jobs WHERE target = ? AND kind NOT IN ('scan', 'ingest.file')",
                         (str(asset_id),))
            conn.execute("DELETE FROM assets WHERE id = ?", (asset_id,))
        doomed = originals
    for asset_id, library_id, path in doomed:
        for kind in DERIVED:
            derived_path(box, kind, asset_id).unlink(missing_ok=True)
        if library_id == UPLOAD_LIBRARY_ID:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("could not delete the original %s: %s", path, exc)
    return len(doomed)


async def empty_expired_trash(box: Photobox) -> int:
    """Periodic: delete for good what has been in the trash longer than ``trash_days``."""
    import asyncio

    days = box.settings.trash_days
    if days <= 0:
        return 0
    total = 0
    while True:
        ids = await box.db.read(lambda c: expired_trash(c, before=box.clock() - days * 86400))
        if not ids:
            return total
        total += await asyncio.to_thread(purge, box, ids)
