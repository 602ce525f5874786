"""Near-duplicates in the database: hashes, accepted pairs, groups, and the user's decisions.

Plain SQL with parameters; every function takes the connection of the caller's read or
write transaction. The grouping itself is :mod:`photobox.duplicates.detect`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apsw
import numpy as np

from photobox.db.sql import id_chunks
from photobox.duplicates import detect
from photobox.library import actions

__all__ = ["Group", "Member", "hash_index", "dismiss_group", "get_group", "keep_one", "list_groups",
           "pending_assets", "photos", "rebuild_groups", "replace_pairs", "save_hashes"]

#: a photo that can be a duplicate: a still (not the video of a Live Photo), not in the trash
_ELIGIBLE = "a.kind = 'image' AND a.trashed_at IS NULL AND a.motion_of IS NULL"


def pending_assets(conn: apsw.Connection, limit: int, after_id: int = 0) -> list[tuple[int, int]]:
    """(asset id, thumb_version) of photos with a thumbnail that is not hashed (or changed since)."""
    return conn.execute(
        f"SELECT a.id, a.thumb_version FROM assets a LEFT JOIN dupe_hashes h ON h.asset_id = a.id "
        f"WHERE {_ELIGIBLE} AND a.thumb_version > 0 AND a.id > ? "
        f"AND (h.asset_id IS NULL OR h.thumb_version != a.thumb_version) ORDER BY a.id LIMIT ?",
        (after_id, limit)).fetchall()


def save_hashes(conn: apsw.Connection, rows: list[tuple[int, int, int, int]], *, now: float) -> None:
    """Upsert (asset id, phash, dhash, thumb_version) rows."""
    conn.executemany(
        "INSERT INTO dupe_hashes (asset_id, phash, dhash, thumb_version, hashed_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM assets WHERE id = ?1) "
        "ON CONFLICT (asset_id) DO UPDATE SET phash = excluded.phash, dhash = excluded.dhash, "
        "thumb_version = excluded.thumb_version, hashed_at = excluded.hashed_at",
        [(*r, now) for r in rows])


def hash_index(conn: apsw.Connection) -> detect.HashIndex:
    """Every hashed photo that can be a duplicate, as a :class:`~detect.HashIndex` (32 bytes
    a photo: 16 MB for half a million)."""
    trusted = ",".join("?" * len(detect.TRUSTED_TIME_SOURCES))
    rows = conn.execute(
        f"SELECT h.asset_id, h.phash, h.dhash, CASE WHEN a.taken_at IS NOT NULL AND a.taken_at_source IN ({trusted}) "
        f"THEN a.sort_ts END FROM dupe_hashes h JOIN assets a ON a.id = h.asset_id WHERE {_ELIGIBLE}",
        sorted(detect.TRUSTED_TIME_SOURCES)).fetchall()
    ints = np.array([r[:3] for r in rows], dtype=np.int64).reshape(-1, 3)
    ts = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    return detect.HashIndex(ints[:, 0].copy(), ints[:, 1].copy(), ints[:, 2].copy(), ts)


def photos(conn: apsw.Connection, ids: list[int]) -> dict[int, detect.Photo]:
    """What the pair rule needs about each of ``ids`` (hashed ones only)."""
    out: dict[int, detect.Photo] = {}
    for chunk, marks in id_chunks(sorted(set(ids))):
        for row in conn.execute(
                f"SELECT a.id, h.phash, h.dhash, a.sort_ts, a.taken_at, a.taken_at_source FROM assets a "
                f"JOIN dupe_hashes h ON h.asset_id = a.id WHERE a.id IN ({marks})", chunk):
            out[row[0]] = detect.Photo(*row)
    return out


def replace_pairs(conn: apsw.Connection, asset_ids: list[int], pairs: list[tuple[int, int, int]]) -> None:
    """Forget the pairs of ``asset_ids`` (their hashes changed) and store ``pairs`` (a, b, distance)."""
    for chunk, marks in id_chunks(asset_ids):
        conn.execute(f"DELETE FROM dupe_pairs WHERE a IN ({marks}) OR b IN ({marks})", chunk + chunk)
    conn.executemany("INSERT OR REPLACE INTO dupe_pairs (a, b, distance) VALUES (?, ?, ?)", pairs)


def _keeper_rows(conn: apsw.Connection, ids: list[int]) -> list[dict]:
    cols = ("id", "width", "height", "display_width", "display_height", "taken_at_source", "make", "mime",
            "latitude", "description", "favorite", "size", "mtime", "created_at")
    out = []
    for chunk, marks in id_chunks(ids):
        out += [dict(zip(cols, r)) for r in conn.execute(
            f"SELECT {', '.join(cols)} FROM assets WHERE id IN ({marks})", chunk)]
    return out


def suggest_keeper(rows: list[dict]) -> int:
    return min(rows, key=detect.keeper_order)["id"]


def rebuild_groups(conn: apsw.Connection) -> int:
    """Group the stored pairs again (photos in the trash left out, "not duplicates" kept
    apart) and replace ``dupe_groups``/``dupe_members``; returns the number of groups."""
    pairs = conn.execute(
        f"SELECT p.a, p.b, p.distance FROM dupe_pairs p JOIN assets a ON a.id = p.a JOIN assets b ON b.id = p.b "
        f"WHERE {_ELIGIBLE} AND {_ELIGIBLE.replace('a.', 'b.')} "
        f"AND NOT EXISTS (SELECT 1 FROM dupe_dismissed d WHERE d.a = p.a AND d.b = p.b)").fetchall()
    ids = sorted({i for a, b, _ in pairs for i in (a, b)})
    info = photos(conn, ids)
    dismissed: set[tuple[int, int]] = set()
    for chunk, marks in id_chunks(ids):
        dismissed.update(conn.execute(f"SELECT a, b FROM dupe_dismissed WHERE a IN ({marks})", chunk).fetchall())

    def cannot(x: int, y: int) -> bool:
        return (min(x, y), max(x, y)) in dismissed or detect.different_moments(info[x], info[y])

    groups = detect.group_pairs(pairs, cannot)
    conn.execute("DELETE FROM dupe_members")
    conn.execute("DELETE FROM dupe_groups")
    for members in groups:
        keeper = suggest_keeper(_keeper_rows(conn, members))
        conn.execute("INSERT INTO dupe_groups (id, keeper_id, size) VALUES (?, ?, ?)", (members[0], keeper, len(members)))
        conn.executemany("INSERT INTO dupe_members (asset_id, group_id) VALUES (?, ?)", [(m, members[0]) for m in members])
    return len(groups)


@dataclass(slots=True)
class Member:
    id: int
    original_name: str
    size: int
    width: int | None
    height: int | None
    taken_at: str | None
    mime: str | None
    thumb_version: int
    favorite: bool
    has_gps: bool
    albums: int
    taken_at_source: str | None = None
    keeper: bool = False

    @property
    def camera_time(self) -> bool:
        """The date came from the file's own metadata (not its name or modification time)."""
        return self.taken_at is not None and self.taken_at_source in detect.TRUSTED_TIME_SOURCES

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def size_text(self) -> str:
        size = float(self.size)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1000 or unit == "GB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1000
        return ""

    @property
    def format(self) -> str:
        return (self.mime or "").split("/")[-1].upper().replace("X-", "") or "?"


@dataclass(slots=True)
class Group:
    id: int
    keeper_id: int
    members: list[Member] = field(default_factory=list)


_MEMBER = ("a.id, a.original_name, a.size, coalesce(a.display_width, a.width), coalesce(a.display_height, a.height), "
           "a.taken_at, a.mime, a.thumb_version, a.favorite, a.latitude IS NOT NULL, "
           "(SELECT count(*) FROM album_assets aa WHERE aa.asset_id = a.id), a.taken_at_source")


def _members(conn: apsw.Connection, group_ids: list[int]) -> dict[int, list[Member]]:
    out: dict[int, list[Member]] = {}
    for chunk, marks in id_chunks(group_ids):
        for gid, *row in conn.execute(
                f"SELECT m.group_id, {_MEMBER} FROM dupe_members m JOIN assets a ON a.id = m.asset_id "
                f"WHERE m.group_id IN ({marks}) AND {_ELIGIBLE} ORDER BY m.group_id, a.id", chunk):
            row[8], row[9] = bool(row[8]), bool(row[9])
            out.setdefault(gid, []).append(Member(*row))
    return out


def list_groups(conn: apsw.Connection, *, after: int = 0, limit: int = 20) -> list[Group]:
    """Groups in id order after ``after`` (keyset pagination); members in the trash since
    the last rebuild are left out, and a group left with one photo is not shown."""
    groups: list[Group] = []
    cursor = after
    while len(groups) < limit:
        rows = conn.execute("SELECT id, keeper_id FROM dupe_groups WHERE id > ? ORDER BY id LIMIT ?",
                            (cursor, limit)).fetchall()
        if not rows:
            break
        members = _members(conn, [r[0] for r in rows])
        for gid, keeper in rows:
            ms = members.get(gid, [])
            if len(ms) < 2:
                continue
            if keeper not in {m.id for m in ms}:
                keeper = suggest_keeper(_keeper_rows(conn, [m.id for m in ms]))
            for m in ms:
                m.keeper = m.id == keeper
            ms.sort(key=lambda m: (not m.keeper, -m.pixels, m.id))
            groups.append(Group(gid, keeper, ms))
            if len(groups) == limit:
                break
        cursor = rows[-1][0]
    return groups


def get_group(conn: apsw.Connection, group_id: int) -> Group | None:
    row = conn.execute("SELECT id, keeper_id FROM dupe_groups WHERE id = ?", (group_id,)).fetchone()
    if row is None:
        return None
    found = list_groups(conn, after=group_id - 1, limit=1)
    return found[0] if found and found[0].id == group_id else None


def _drop_group(conn: apsw.Connection, group_id: int) -> None:
    conn.execute("DELETE FROM dupe_members WHERE group_id = ?", (group_id,))
    conn.execute("DELETE FROM dupe_groups WHERE id = ?", (group_id,))


def keep_one(conn: apsw.Connection, group_id: int, keeper_id: int, *, now: float) -> list[int]:
    """Keep ``keeper_id`` and move the rest of its group to the trash, in the caller's one
    transaction. Before that, the keeper gets what the others had: their albums, a
    favourite mark, and their descriptions (appended when different). Returns the trashed ids.

    Raises:
        LookupError: no such group, or the photo is not in it.
    """
    members = [i for (i,) in conn.execute(
        "SELECT m.asset_id FROM dupe_members m JOIN assets a ON a.id = m.asset_id "
        "WHERE m.group_id = ? AND a.trashed_at IS NULL", (group_id,))]
    if keeper_id not in members:
        raise LookupError("that photo is not in this group of duplicates (any more)")
    others = [i for i in members if i != keeper_id]
    for album_id, in conn.execute(
            "SELECT DISTINCT album_id FROM album_assets WHERE asset_id IN (SELECT asset_id FROM dupe_members "
            "WHERE group_id = ? AND asset_id != ?)", (group_id, keeper_id)).fetchall():
        actions.add_to_album(conn, album_id, [keeper_id], now=now)
    fav, = conn.execute("SELECT max(favorite) FROM assets WHERE id IN (SELECT asset_id FROM dupe_members "
                        "WHERE group_id = ?)", (group_id,)).fetchone()
    texts: list[str] = []
    for (text,) in conn.execute(
            "SELECT description FROM assets WHERE id IN (SELECT asset_id FROM dupe_members WHERE group_id = ?) "
            "AND trim(coalesce(description, '')) != '' ORDER BY id = ? DESC, id", (group_id, keeper_id)).fetchall():
        if text.strip() not in texts:
            texts.append(text.strip())
    conn.execute("UPDATE assets SET favorite = ?, description = ?, updated_at = ? WHERE id = ?",
                 (fav or 0, "\n\n".join(texts) or None, now, keeper_id))
    if others:
        actions.apply_action(conn, "trash", others, now=now)
    _drop_group(conn, group_id)
    return others


def dismiss_group(conn: apsw.Connection, group_id: int, *, now: float) -> int:
    """"Not duplicates": remember every pair of the group so it is never suggested again."""
    members = [i for (i,) in conn.execute("SELECT asset_id FROM dupe_members WHERE group_id = ? ORDER BY asset_id",
                                          (group_id,))]
    if not members:
        raise LookupError("no such group of duplicates (any more)")
    conn.executemany("INSERT OR IGNORE INTO dupe_dismissed (a, b, created_at) VALUES (?, ?, ?)",
                     [(a, b, now) for n, a in enumerate(members) for b in members[n + 1:]])
    _drop_group(conn, group_id)
    return len(members)


def count_groups(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM dupe_groups").fetchone()[0]
