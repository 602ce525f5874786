"""The ``albums`` and ``album_assets`` tables' store: every write to them (create, rename,
cover, delete, add, remove, restore from a sidecar) and the reads pages share.

An album holds stills and videos, never a Live Photo's video half (it plays inside its
still). Its cover is one of its members: adding sets a cover when there is none, removing
the cover picks the newest member left. Deleting an album leaves its photos in the library.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import apsw

from photobox.library import assets

__all__ = ["UNTITLED", "add_to_album", "album_names", "albums_of", "create_album", "delete_album", "get_album",
           "list_albums", "remove_from_album", "restore_album", "set_cover", "update_album"]

#: The name of an album made without one.
UNTITLED = "Untitled album"


def _name(text: str) -> str:
    return text.strip()[:200] or UNTITLED


def list_albums(conn: apsw.Connection) -> list[dict]:
    """Every album, most recently changed first: id, name, cover (asset id), its thumbnail
    version and placeholder (base64), and how many photos it holds."""
    rows = conn.execute(
        "SELECT al.id, al.name, al.cover_asset_id, a.thumb_version, a.placeholder, "
        "(SELECT count(*) FROM album_assets aa WHERE aa.album_id = al.id) "
        "FROM albums al LEFT JOIN assets a ON a.id = al.cover_asset_id ORDER BY al.updated_at DESC, al.id DESC"
    ).fetchall()
    return [{"id": r[0], "name": r[1], "cover": r[2], "thumb_version": r[3] or 0,
             "placeholder": base64.b64encode(r[4]).decode() if r[4] else "", "count": r[5]} for r in rows]


def album_names(conn: apsw.Connection) -> list[tuple[int, str]]:
    """(id, name) of every album, by name."""
    return conn.execute("SELECT id, name FROM albums ORDER BY name").fetchall()


def get_album(conn: apsw.Connection, album_id: int) -> tuple[int, str, str] | None:
    """(id, name, description) of one album."""
    return conn.execute("SELECT id, name, description FROM albums WHERE id = ?", (album_id,)).fetchone()


def albums_of(conn: apsw.Connection, asset_id: int) -> list[tuple[int, str]]:
    """(id, name) of the albums an asset is in, by name."""
    return conn.execute("SELECT al.id, al.name FROM album_assets aa JOIN albums al ON al.id = aa.album_id "
                        "WHERE aa.asset_id = ? ORDER BY al.name", (asset_id,)).fetchall()


def create_album(conn: apsw.Connection, name: str, *, now: float) -> int:
    """A new, empty album; returns its id."""
    conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES (?, ?, ?)", (_name(name), now, now))
    return conn.last_insert_rowid()


def update_album(conn: apsw.Connection, album_id: int, name: str, description: str, *, now: float) -> None:
    """Rename an album and set its description."""
    conn.execute("UPDATE albums SET name = ?, description = ?, updated_at = ? WHERE id = ?",
                 (_name(name), description.strip()[:2000], now, album_id))


def set_cover(conn: apsw.Connection, album_id: int, asset_id: int, *, now: float) -> None:
    """Make one of the album's photos its cover (a photo not in the album changes nothing)."""
    conn.execute("UPDATE albums SET cover_asset_id = ?, updated_at = ? WHERE id = ? AND EXISTS "
                 "(SELECT 1 FROM album_assets WHERE album_id = ? AND asset_id = ?)",
                 (asset_id, now, album_id, album_id, asset_id))


def delete_album(conn: apsw.Connection, album_id: int) -> None:
    """Delete an album (its photos stay in the library)."""
    conn.execute("DELETE FROM albums WHERE id = ?", (album_id,))


def add_to_album(conn: apsw.Connection, album_id: int, ids: Iterable[int], *, now: float) -> int:
    """Add assets to an album (already there: unchanged); returns how many were added."""
    ids = [int(i) for i in ids]
    assets.select(conn, ids, videos=False)
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


def restore_album(conn: apsw.Connection, name: str, description: str, created_at: float, members: Iterable[int],
                  cover: int | None, *, now: float) -> tuple[bool, int]:
    """Bring back an album from a sidecar: the album of that exact name (made when missing),
    with ``members`` added and ``cover`` as its cover (else its cover, else its newest photo).
    Returns (whether the album was made, how many members were added)."""
    row = conn.execute("SELECT id FROM albums WHERE name = ? ORDER BY id LIMIT 1", (name,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO albums (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
                     (name, description, created_at, now))
        album_id = conn.last_insert_rowid()
    else:
        album_id = row[0]
    added = 0
    for asset_id in members:
        conn.execute("INSERT OR IGNORE INTO album_assets (album_id, asset_id, sort_ts, added_at) "
                     "SELECT ?, id, sort_ts, ? FROM assets WHERE id = ?", (album_id, now, asset_id))
        added += conn.changes()
    conn.execute("UPDATE albums SET cover_asset_id = coalesce(?, cover_asset_id, (SELECT asset_id FROM "
                 "album_assets WHERE album_id = ? ORDER BY sort_ts DESC LIMIT 1)) WHERE id = ?",
                 (cover, album_id, album_id))
    return row is None, added
