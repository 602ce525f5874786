"""Near-duplicates in the database: hashes, the work queue, groups, and the user's decisions.

Plain SQL with parameters; every function takes the connection of the caller's read or
write transaction. The pair rule and the grouping are :mod:`photobox.duplicates.detect`,
the lookups :mod:`~photobox.duplicates.index`, the links between look-alikes
:mod:`~photobox.duplicates.links`.

Groups are what the review page lists and what the user resolves. They are kept, not
rebuilt: when photos change, :func:`regroup` builds again only the groups reachable from
them through the links (their trees), which gives the same groups as grouping everything,
since trees never share a photo.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import apsw

from photobox.db.sql import id_chunks
from photobox.duplicates import detect, links
from photobox.duplicates.index import ELIGIBLE, Finder
from photobox.library import albums, assets
from photobox.library.assets import NOT_TRASHED

__all__ = ["Group", "Member", "count_groups", "dirty", "dismiss_group", "done", "get_group", "keep_one",
           "list_groups", "needs_hash", "regroup", "save_hashes"]


def dirty(conn: apsw.Connection, limit: int, after: int = 0) -> list[tuple[int, int]]:
    """(queue position, asset id) of photos to look at again, oldest first, after ``after``.
    Migration 0014's triggers queue a photo when its thumbnail, capture time, trash state or
    kind changes, and when it is deleted while it has links or a group."""
    return conn.execute("SELECT seq, asset_id FROM dupe_dirty WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after, limit)).fetchall()


def done(conn: apsw.Connection, seqs: list[int]) -> None:
    """Take handled entries off the queue. A photo queued again meanwhile has a new position
    and stays."""
    conn.executemany("DELETE FROM dupe_dirty WHERE seq = ?", [(s,) for s in seqs])


def needs_hash(conn: apsw.Connection, ids: list[int]) -> list[tuple[int, int]]:
    """(asset id, thumb_version) of those of ``ids`` that can be duplicates and whose
    thumbnail is not hashed (or changed since)."""
    out = []
    for chunk, marks in id_chunks(ids):
        out += conn.execute(
            f"SELECT a.id, a.thumb_version FROM assets a LEFT JOIN dupe_hashes h ON h.asset_id = a.id "
            f"WHERE a.id IN ({marks}) AND {ELIGIBLE} AND a.thumb_version > 0 "
            f"AND (h.asset_id IS NULL OR h.thumb_version != a.thumb_version)", chunk).fetchall()
    return sorted(out)


def save_hashes(conn: apsw.Connection, rows: list[tuple[int, int, int, int]], *, now: float) -> None:
    """Upsert (asset id, phash, dhash, thumb_version) rows."""
    conn.executemany(
        "INSERT INTO dupe_hashes (asset_id, phash, dhash, thumb_version, hashed_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM assets WHERE id = ?1) "
        "ON CONFLICT (asset_id) DO UPDATE SET phash = excluded.phash, dhash = excluded.dhash, "
        "thumb_version = excluded.thumb_version, hashed_at = excluded.hashed_at",
        [(*r, now) for r in rows])


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


def _component(conn: apsw.Connection, seeds: set[int]) -> tuple[set[int], list[tuple[int, int, int]]]:
    """Every photo reachable from ``seeds`` through the forest or a stored group, and the
    forest's links between them."""
    nodes: set[int] = set()
    edges: set[tuple[int, int, int]] = set()
    todo = set(seeds)
    while todo:
        found, links_found = links.component(conn, todo)
        nodes |= found
        edges.update(links_found)
        members: set[int] = set()
        for chunk, marks in id_chunks(sorted(found)):
            members.update(i for (i,) in conn.execute(
                f"SELECT m.asset_id FROM dupe_members m WHERE m.group_id IN "
                f"(SELECT group_id FROM dupe_members WHERE asset_id IN ({marks}))", chunk))
        todo = members - nodes
    return nodes, sorted(edges)


def _dismissals(conn: apsw.Connection, ids: list[int]) -> dict[int, frozenset[int]]:
    out: dict[int, set[int]] = {}
    for chunk, marks in id_chunks(ids):
        for asset_id, set_id in conn.execute(
                f"SELECT asset_id, set_id FROM dupe_dismissals WHERE asset_id IN ({marks})", chunk):
            out.setdefault(asset_id, set()).add(set_id)
    return {i: frozenset(s) for i, s in out.items()}


def regroup(conn: apsw.Connection, seeds: Iterable[int]) -> int:
    """Build again the groups of the photos connected to ``seeds`` (their look-alikes, and
    the members of their current groups): photos in the trash left out, photos the user
    called "not duplicates" kept apart. Returns the number of groups written."""
    nodes, edges = _component(conn, set(seeds))
    if not nodes:
        return 0
    info = Finder(conn).photos(sorted(nodes))
    dismissed = _dismissals(conn, sorted(info))
    none: frozenset[int] = frozenset()

    def cannot(x: int, y: int) -> bool:
        return bool(dismissed.get(x, none) & dismissed.get(y, none)) or detect.different_moments(info[x], info[y])

    def key(x: int):  # everything ``cannot`` looks at
        p = info[x]
        return (p.sort_ts, p.has_subseconds, dismissed.get(x, none)) if p.timed else (None, dismissed.get(x, none))

    edges = {(a, b): d for a, b, d in [*edges, *links.nearest(conn, info)] if a in info and b in info}
    groups = detect.group_pairs([(a, b, d) for (a, b), d in edges.items()], cannot, key)
    for chunk, marks in id_chunks(sorted(nodes)):
        conn.execute(f"DELETE FROM dupe_groups WHERE id IN (SELECT group_id FROM dupe_members "
                     f"WHERE asset_id IN ({marks}))", chunk)  # members go with their group (ON DELETE CASCADE)
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
                f"WHERE m.group_id IN ({marks}) AND {ELIGIBLE} ORDER BY m.group_id, a.id", chunk):
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
        f"SELECT m.asset_id FROM dupe_members m JOIN assets a ON a.id = m.asset_id "
        f"WHERE m.group_id = ? AND {NOT_TRASHED}", (group_id,))]
    if keeper_id not in members:
        raise LookupError("that photo is not in this group of duplicates (any more)")
    others = [i for i in members if i != keeper_id]
    for album_id, in conn.execute(
            "SELECT DISTINCT album_id FROM album_assets WHERE asset_id IN (SELECT asset_id FROM dupe_members "
            "WHERE group_id = ? AND asset_id != ?)", (group_id, keeper_id)).fetchall():
        albums.add_to_album(conn, album_id, [keeper_id], now=now)
    fav, = conn.execute("SELECT max(favorite) FROM assets WHERE id IN (SELECT asset_id FROM dupe_members "
                        "WHERE group_id = ?)", (group_id,)).fetchone()
    texts: list[str] = []
    for (text,) in conn.execute(
            "SELECT description FROM assets WHERE id IN (SELECT asset_id FROM dupe_members WHERE group_id = ?) "
            "AND trim(coalesce(description, '')) != '' ORDER BY id = ? DESC, id", (group_id, keeper_id)).fetchall():
        if text.strip() not in texts:
            texts.append(text.strip())
    assets.set_favorite_description(conn, keeper_id, fav or 0, "\n\n".join(texts) or None, now=now)
    if others:
        assets.apply_action(conn, "trash", others, now=now)
    _drop_group(conn, group_id)
    return others


def dismiss_group(conn: apsw.Connection, group_id: int, *, now: float) -> int:
    """"Not duplicates": remember the group's photos as a set that is never grouped together
    again (one row per photo, not per pair)."""
    members = [i for (i,) in conn.execute("SELECT asset_id FROM dupe_members WHERE group_id = ? ORDER BY asset_id",
                                          (group_id,))]
    if not members:
        raise LookupError("no such group of duplicates (any more)")
    set_id = conn.execute("SELECT coalesce(max(set_id), 0) + 1 FROM dupe_dismissals").fetchone()[0]
    conn.executemany("INSERT INTO dupe_dismissals (set_id, asset_id, created_at) VALUES (?, ?, ?)",
                     [(set_id, a, now) for a in members])
    _drop_group(conn, group_id)
    return len(members)


def count_groups(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM dupe_groups").fetchone()[0]
