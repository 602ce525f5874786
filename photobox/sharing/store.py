"""Share links: create, find by token, list, revoke, new token, and the assets a link shows.

A link is ``/s/<token>``; the token is ``secrets.token_urlsafe(24)`` (192 bits) and only its
SHA-256 is stored (like sessions and API keys), so the full link is shown once, right after
it is made, and "new link" replaces it. Google Photos shows links again; we choose a leaked
database copy (a backup on a USB stick) not handing out live links over that convenience.

Which assets a share shows is decided here and only here: an album share shows the album's
assets (not in the trash), a selection share the stored ids (not in the trash). Every public
file route asks :func:`contains` before serving anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from photobox.db.sql import id_chunks
from photobox.library import albums
from photobox.library.assets import VISIBLE_WITH_ARCHIVED
from photobox.library.timeline import TILE_COLUMNS as _TILE
from photobox.library.timeline import Tile, keyset_neighbors, parse_cursor

__all__ = ["Share", "create_share", "find_share", "get_share", "list_shares", "revoke_share", "new_token",
           "page", "contains", "neighbors", "asset_ids", "record_view", "token_hash", "MAX_SELECTION",
           "camera_and_position"]

MAX_SELECTION = 50_000

_COLUMNS = ("s.id, s.kind, s.album_id, s.title, s.password_hash, s.allow_download, s.show_metadata, s.expires_at, "
            "s.revoked_at, s.created_at, s.token_at, s.views, s.last_viewed_at")


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Share:
    id: int
    kind: str  # 'album' | 'assets'
    album_id: int | None
    title: str
    password_hash: str | None
    allow_download: bool
    show_metadata: bool
    expires_at: float | None
    revoked_at: float | None
    created_at: float
    token_at: float
    views: int
    last_viewed_at: float | None
    count: int = 0

    def live(self, now: float) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


def _row(r) -> Share:
    return Share(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), *r[7:])


def create_share(conn: apsw.Connection, *, album_id: int | None = None, asset_ids: Iterable[int] = (),
                 title: str = "", password_hash: str | None = None, allow_download: bool = False,
                 show_metadata: bool = False, expires_at: float | None = None,
                 now: float | None = None) -> tuple[Share, str]:
    """Make a link to an album (``album_id``) or to a selection (``asset_ids``).

    Returns (share, token); the token is not stored and cannot be shown again.

    Raises:
        ValueError: no such album, nothing selected, or too many.
    """
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(24)
    if album_id is not None:
        album = albums.get_album(conn, album_id)
        if album is None:
            raise ValueError("There is no such album.")
        title = title.strip() or album[1]
        kind = "album"
    else:
        ids = sorted({int(i) for i in asset_ids})
        if not ids:
            raise ValueError("Select at least one photo to share.")
        if len(ids) > MAX_SELECTION:
            raise ValueError(f"A link can share at most {MAX_SELECTION} items; use an album for more.")
        kind = "assets"
    conn.execute(
        "INSERT INTO shares (token_hash, kind, album_id, title, password_hash, allow_download, show_metadata, "
        "expires_at, created_at, token_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (token_hash(token), kind, album_id, title.strip()[:200], password_hash, int(allow_download),
         int(show_metadata), expires_at, now, now))
    share_id = conn.last_insert_rowid()
    if kind == "assets":
        for chunk, marks in id_chunks(ids):
            conn.execute(f"INSERT OR IGNORE INTO share_assets (share_id, asset_id, sort_ts) "
                         f"SELECT ?, id, sort_ts FROM assets WHERE id IN ({marks}) AND motion_of IS NULL",
                         (share_id, *chunk))
        if not conn.execute("SELECT 1 FROM share_assets WHERE share_id = ? LIMIT 1", (share_id,)).fetchone():
            raise ValueError("None of the selected photos exist.")
    return get_share(conn, share_id), token  # type: ignore[return-value]


def get_share(conn: apsw.Connection, share_id: int) -> Share | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM shares s WHERE s.id = ?", (share_id,)).fetchone()
    return _row(row) if row else None


def find_share(conn: apsw.Connection, token: str) -> Share | None:
    """The share with this token (revoked and expired ones too: the caller says 410 for those)."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM shares s WHERE s.token_hash = ?", (token_hash(token),)).fetchone()
    return _row(row) if row else None


def list_shares(conn: apsw.Connection) -> list[Share]:
    """All links, newest first, with how many items each shows."""
    out = []
    for r in conn.execute(f"SELECT {_COLUMNS} FROM shares s ORDER BY s.id DESC").fetchall():
        s = _row(r)
        out.append(dataclasses.replace(s, count=count(conn, s)))
    return out


def count(conn: apsw.Connection, share: Share) -> int:
    base, _, _ = _source(share)
    return conn.execute(f"SELECT count(*) {base}", {"album": share.album_id, "share": share.id}).fetchone()[0]


def revoke_share(conn: apsw.Connection, share_id: int, *, now: float | None = None) -> bool:
    """Stop a link at once; True if it was not revoked before."""
    conn.execute("UPDATE shares SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                 (time.time() if now is None else now, share_id))
    return conn.changes() > 0


def new_token(conn: apsw.Connection, share_id: int, *, now: float | None = None) -> str | None:
    """Replace a live link's token (the old link stops working); the new token, or None."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(24)
    conn.execute("UPDATE shares SET token_hash = ?, token_at = ? WHERE id = ? AND revoked_at IS NULL",
                 (token_hash(token), now, share_id))
    return token if conn.changes() else None


def record_view(conn: apsw.Connection, share_id: int, *, now: float | None = None) -> None:
    conn.execute("UPDATE shares SET views = views + 1, last_viewed_at = ? WHERE id = ?",
                 (time.time() if now is None else now, share_id))


# -- what a share shows: constant SQL chosen by kind, keyset-paginated ------------------------

_SOURCES = {
    "album": ("FROM album_assets x JOIN assets a ON a.id = x.asset_id "
              f"WHERE x.album_id = :album AND {VISIBLE_WITH_ARCHIVED}", "x.sort_ts", "x.asset_id"),
    "assets": ("FROM share_assets x JOIN assets a ON a.id = x.asset_id "
               f"WHERE x.share_id = :share AND {VISIBLE_WITH_ARCHIVED}", "x.sort_ts", "x.asset_id"),
}


def _source(share: Share) -> tuple[str, str, str]:
    return _SOURCES[share.kind]


def page(conn: apsw.Connection, share: Share, *, before: str | None = None, limit: int = 120) -> list[Tile]:
    """Up to ``limit`` tiles of the share older than the cursor ``before``, newest first."""
    base, order, ident = _source(share)
    value, last_id = parse_cursor(before)
    rows = conn.execute(
        f"SELECT {_TILE} {base} AND ({order}, {ident}) < (:value, :id) ORDER BY {order} DESC, {ident} DESC LIMIT :limit",
        {"album": share.album_id, "share": share.id, "value": value, "id": last_id, "limit": limit}).fetchall()
    return [Tile(*r) for r in rows]


def contains(conn: apsw.Connection, share: Share, asset_id: int) -> bool:
    """Whether the share shows this asset (the one check every public file route makes)."""
    base, _, ident = _source(share)
    return conn.execute(f"SELECT 1 {base} AND {ident} = :asset",
                        {"album": share.album_id, "share": share.id, "asset": int(asset_id)}).fetchone() is not None


def neighbors(conn: apsw.Connection, share: Share, asset_id: int) -> tuple[int | None, int | None]:
    """(newer, older) ids next to ``asset_id`` within the share, for the viewer's arrows."""
    base, order, ident = _source(share)
    return keyset_neighbors(conn, base, order, ident, {"album": share.album_id, "share": share.id}, asset_id)


def asset_ids(conn: apsw.Connection, share: Share) -> list[int]:
    """Every id the share shows, newest first (for the zip of all)."""
    base, order, ident = _source(share)
    return [r[0] for r in conn.execute(f"SELECT {ident} {base} ORDER BY {order} DESC, {ident} DESC",
                                       {"album": share.album_id, "share": share.id})]


def camera_and_position(conn: apsw.Connection, asset_id: int) -> tuple | None:
    """(make, model, latitude, longitude) of a shared asset, for a share that shows metadata."""
    return conn.execute("SELECT make, model, latitude, longitude FROM assets WHERE id = ?", (asset_id,)).fetchone()
