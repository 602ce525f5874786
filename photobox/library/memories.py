""""On this day": photos taken on today's month and day (±1 day) in earlier years, one
memory per year ("3 years ago"), made once a day and stored, so the home page reads a few
rows.

What goes in: photos (not videos) not in the trash or the archive, not a Live Photo's
video, and not a copy that the duplicates review would suggest deleting (only a group's
keeper counts). Burst neighbours are thinned: photos less than ``BURST_SECONDS`` apart form
one moment, and each moment gives its best photo (a favourite, then the most pixels). When a
year has more moments than ``PER_YEAR``, they are picked evenly across the day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import apsw

from photobox.library.assets import VISIBLE

if TYPE_CHECKING:
    from photobox.core import Photobox
    from photobox.db import LimitedReader

__all__ = ["Memory", "build_memories", "get_memory", "memories_for", "home_memories", "refresh_memories", "today_for"]

PER_YEAR = 12
BURST_SECONDS = 60.0
WINDOW_DAYS = 1
_DAY_KEY = "memories_day"


@dataclass(slots=True)
class Memory:
    id: int
    year: int
    title: str
    cover_id: int | None
    count: int
    cover_version: int = 0


def years_ago_title(years: int) -> str:
    return "1 year ago" if years == 1 else f"{years} years ago"


def today_for(box: Photobox) -> date:
    """Today on the box's local clock (photos are dated by local wall-clock time, too)."""
    return date(*time.localtime(box.clock())[:3])


def _shifted(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one: the 28th stands in
        return day.replace(year=day.year - years, day=28)


def _pick(rows: list[tuple[int, float, int, int]]) -> list[int]:
    """Best photo of each moment, then at most PER_YEAR moments spread evenly. ``rows`` are
    (id, sort_ts, favourite, pixels) in time order."""
    moments: list[list[tuple[int, float, int, int]]] = []
    for row in rows:
        if moments and row[1] - moments[-1][-1][1] < BURST_SECONDS:
            moments[-1].append(row)
        else:
            moments.append([row])
    best = [max(m, key=lambda r: (r[2], r[3], -r[0]))[0] for m in moments]
    if len(best) <= PER_YEAR:
        return best
    step = (len(best) - 1) / (PER_YEAR - 1)
    return [best[round(i * step)] for i in range(PER_YEAR)]


def build_memories(conn: apsw.Connection, today: date, *, now: float) -> int:
    """Replace the memories of ``today`` (in the caller's transaction); returns how many."""
    days = [today + timedelta(days=k) for k in range(-WINDOW_DAYS, WINDOW_DAYS + 1)]
    keys = sorted({d.strftime("%m-%d") for d in days})
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT a.id, a.local_date, a.sort_ts, a.favorite, "
        f"coalesce(a.display_width, a.width, 0) * coalesce(a.display_height, a.height, 0) "
        f"FROM assets a WHERE substr(a.local_date, 6, 5) IN ({marks}) "
        f"AND {VISIBLE} AND a.kind = 'image' "
        f"AND a.local_date < ? AND NOT EXISTS (SELECT 1 FROM dupe_members m JOIN dupe_groups g ON g.id = m.group_id "
        f"WHERE m.asset_id = a.id AND g.keeper_id != a.id) ORDER BY a.sort_ts, a.id",
        (*keys, today.replace(month=1, day=1).isoformat())).fetchall()
    by_year: dict[int, list[tuple[int, float, int, int]]] = {}
    for asset_id, local_date, sort_ts, fav, pixels in rows:
        taken = date.fromisoformat(local_date)
        for years in range(1, today.year - taken.year + 1):
            if abs((taken - _shifted(today, years)).days) <= WINDOW_DAYS:
                by_year.setdefault(today.year - years, []).append((asset_id, sort_ts, fav, pixels))
                break
    conn.execute("DELETE FROM memories WHERE day = ?", (today.isoformat(),))
    made = 0
    for year in sorted(by_year, reverse=True):
        picked = _pick(by_year[year])
        favs = {r[0] for r in by_year[year] if r[2]}
        cover = next((i for i in picked if i in favs), picked[len(picked) // 2])
        conn.execute("INSERT INTO memories (day, year, title, cover_id, created_at) VALUES (?, ?, ?, ?, ?)",
                     (today.isoformat(), year, years_ago_title(today.year - year), cover, now))
        memory_id = conn.last_insert_rowid()
        conn.executemany("INSERT INTO memory_assets (memory_id, position, asset_id) VALUES (?, ?, ?)",
                         [(memory_id, n, i) for n, i in enumerate(picked)])
        made += 1
    # Yesterday's and older memories are not shown again; keep the table small.
    conn.execute("DELETE FROM memories WHERE day < ?", ((today - timedelta(days=7)).isoformat(),))
    return made


def memories_for(conn: apsw.Connection, today: date) -> list[Memory]:
    """Today's memories, most recent year first, without photos trashed or archived since
    (``VISIBLE``: a memory's photos are stills, never the video half a Live Photo hides)."""
    out = []
    for mid, year, title, cover, count in conn.execute(
            f"SELECT m.id, m.year, m.title, coalesce("
            f" (SELECT a.id FROM assets a WHERE a.id = m.cover_id AND {VISIBLE}), "
            f" (SELECT x.asset_id FROM memory_assets x JOIN assets a ON a.id = x.asset_id WHERE x.memory_id = m.id "
            f"  AND {VISIBLE} ORDER BY x.position LIMIT 1)), "
            f"(SELECT count(*) FROM memory_assets x JOIN assets a ON a.id = x.asset_id "
            f" WHERE x.memory_id = m.id AND {VISIBLE}) "
            f"FROM memories m WHERE m.day = ? ORDER BY m.year DESC", (today.isoformat(),)).fetchall():
        if count:
            version = conn.execute("SELECT thumb_version FROM assets WHERE id = ?", (cover,)).fetchone()
            out.append(Memory(mid, year, title, cover, count, version[0] if version else 0))
    return out


def get_memory(conn: apsw.Connection, memory_id: int) -> tuple[Memory, list[tuple[int, str | None, int]]] | None:
    """A memory and its photos (id, taken_at, thumb_version) in order, for the slideshow."""
    row = conn.execute("SELECT id, year, title, cover_id FROM memories WHERE id = ?", (memory_id,)).fetchone()
    if row is None:
        return None
    photos = conn.execute(
        f"SELECT a.id, a.taken_at, a.thumb_version FROM memory_assets x JOIN assets a ON a.id = x.asset_id "
        f"WHERE x.memory_id = ? AND {VISIBLE} ORDER BY x.position",
        (memory_id,)).fetchall()
    return Memory(row[0], row[1], row[2], row[3], len(photos)), photos


async def refresh_memories(box: Photobox, *, force: bool = False) -> int | None:
    """Periodic (hourly): make today's memories once the day has changed; returns how many
    were made, or None when today's already exist."""
    today = today_for(box)

    def run(conn) -> int | None:
        last = conn.execute("SELECT value FROM meta WHERE key = ?", (_DAY_KEY,)).fetchone()
        if not force and last is not None and last[0] == today.isoformat():
            return None
        made = build_memories(conn, today, now=box.clock())
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (_DAY_KEY, today.isoformat()))
        return made

    return await box.db.write(run)


def home_memories(box: Photobox, read: LimitedReader):
    """For the timeline page: today's memories (a read of a few rows, through the page's ``read``)."""
    today = today_for(box)
    return read(lambda c: memories_for(c, today))

