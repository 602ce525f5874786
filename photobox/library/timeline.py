"""Lists of assets in timeline order: the timeline, favourites, archive, trash and albums.

Every list is keyset-paginated on (order value, id), never OFFSET, and each has a partial
index that serves it, so page 500 costs what page 1 does. The SQL for each scope is a
constant chosen by name; nothing from a request is pasted into it.
"""

from __future__ import annotations

import base64
import calendar
import math
from dataclasses import dataclass
from datetime import date

import apsw

from photobox.db.sql import id_chunks
from photobox.inputs import INT64_MAX, int_or_none
from photobox.library.assets import IN_TRASH, NOT_TRASHED, VISIBLE, VISIBLE_WITH_ARCHIVED

__all__ = ["Scope", "TILE_COLUMNS", "Tile", "month_index", "neighbors", "page", "month_cursor"]

_TILE = ("a.id, a.kind, a.sort_ts, a.local_date, a.taken_at, coalesce(a.display_width, a.width), "
         "coalesce(a.display_height, a.height), a.duration, a.thumb_version, a.placeholder, a.motion_state, "
         "a.favorite, a.original_name, a.trashed_at, "
         # Only tiles without a thumbnail ask the jobs table (one unique-index probe each), so
         # a file whose thumbnail failed for good says so instead of "Processing…" forever.
         "a.thumb_version = 0 AND EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'thumbs' "
         "AND j.target = CAST(a.id AS TEXT) AND j.state = 'failed')")
#: The columns of a :class:`Tile`, for other grids of assets (``assets a``) to select.
TILE_COLUMNS = _TILE

# name -> (FROM/WHERE without the cursor, order value column, id column)
_SCOPES: dict[str, tuple[str, str, str]] = {
    "timeline": (f"FROM assets a WHERE {VISIBLE}", "a.sort_ts", "a.id"),
    "favorites": (f"FROM assets a WHERE a.favorite = 1 AND {VISIBLE_WITH_ARCHIVED}", "a.sort_ts", "a.id"),
    "archive": (f"FROM assets a WHERE a.archived = 1 AND {VISIBLE_WITH_ARCHIVED}", "a.sort_ts", "a.id"),
    "trash": (f"FROM assets a WHERE {IN_TRASH}", "a.trashed_at", "a.id"),
    "album": (f"FROM album_assets aa JOIN assets a ON a.id = aa.asset_id WHERE aa.album_id = :album AND {NOT_TRASHED}",
              "aa.sort_ts", "aa.asset_id"),
    "person": (f"FROM assets a WHERE a.id IN (SELECT asset_id FROM faces WHERE person_id = :person) "
               f"AND {VISIBLE_WITH_ARCHIVED}", "a.sort_ts", "a.id"),
    # places: a town (stable places.id) or a whole country (ISO code); see photobox/places
    "place": (f"FROM assets a WHERE a.id IN (SELECT asset_id FROM asset_places WHERE place_id = :place) "
              f"AND {VISIBLE}", "a.sort_ts", "a.id"),
    "country": (f"FROM assets a WHERE a.id IN (SELECT ap.asset_id FROM asset_places ap JOIN places p "
                f"ON p.id = ap.place_id WHERE p.country_code = :country) AND {VISIBLE}", "a.sort_ts", "a.id"),
}

_TOP = 1e18


@dataclass(frozen=True, slots=True)
class Scope:
    """Which list: ``timeline``, ``favorites``, ``archive``, ``trash``, ``album`` or ``person``
    (the last two with an id), ``place`` (a town id) or ``country`` (an ISO code)."""

    name: str = "timeline"
    album_id: int | None = None
    person_id: int | None = None
    place_id: int | None = None
    country: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """From the ``in=`` query value: ``timeline``, ``album-12``, ``person-3``…; unknown values mean the timeline."""
        text = (text or "timeline").strip()
        kind, _, number = text.partition("-")
        ident = int_or_none(number)  # ASCII digits within SQLite's range, never str.isdigit()
        if kind == "album" and ident is not None:
            return cls("album", ident)
        if kind == "person" and ident is not None:
            return cls("person", person_id=ident)
        if kind == "place" and ident is not None:
            return cls("place", place_id=ident)
        if text.startswith("country-") and len(text) == 10 and text[8:].isalpha() and text[8:].isupper():
            return cls("country", country=text[8:])
        return cls(text if text in _SCOPES and text not in ("album", "person", "place", "country") else "timeline")

    @property
    def key(self) -> str:
        if self.name == "album":
            return f"album-{self.album_id}"
        if self.name == "person":
            return f"person-{self.person_id}"
        if self.name == "place":
            return f"place-{self.place_id}"
        if self.name == "country":
            return f"country-{self.country}"
        return self.name

    @property
    def by_trash_time(self) -> bool:
        return self.name == "trash"


@dataclass(frozen=True, slots=True)
class Tile:
    id: int
    kind: str
    sort_ts: float
    local_date: str | None
    taken_at: str | None
    width: int | None
    height: int | None
    duration: float | None
    thumb_version: int
    placeholder: bytes | None
    motion_state: str | None
    favorite: int
    original_name: str
    trashed_at: float | None
    thumb_failed: int = 0  # its thumbnail job failed for good: the tile says "could not read"

    @property
    def cursor(self) -> str:
        """This tile as a keyset cursor for the next page."""
        value = self.trashed_at if self.trashed_at is not None else self.sort_ts
        return f"{value!r}:{self.id}"

    @property
    def ratio(self) -> float:
        if self.width and self.height:
            return max(0.5, min(3.0, self.width / self.height))
        return 1.0

    @property
    def ratio_class(self) -> int:
        """Width/height in tenths, 5..30: CSS classes size tiles (no inline styles under the CSP)."""
        return int(round(self.ratio * 10))

    @property
    def placeholder_b64(self) -> str:
        return base64.b64encode(self.placeholder).decode() if self.placeholder else ""

    @property
    def duration_text(self) -> str:
        if not self.duration:
            return ""
        s = int(round(self.duration))
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def parse_cursor(text: str | None) -> tuple[float, int]:
    """``"<value>:<id>"`` → (value, id); the top of the list when absent or malformed."""
    if text:
        value, _, ident = text.partition(":")
        last_id = int_or_none(ident or "0", lo=-INT64_MAX - 1)
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and last_id is not None:
            return number, last_id
    return _TOP, 0


def month_cursor(year: int, month: int) -> str:
    """A cursor that starts a list at the newest photo of ``year-month`` (local time)."""
    y, m = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{float(calendar.timegm(date(y, m, 1).timetuple()))!r}:0"


def page(conn: apsw.Connection, scope: Scope, *, before: str | None = None, limit: int = 200) -> list[Tile]:
    """Up to ``limit`` tiles of ``scope`` older than the cursor ``before``, newest first."""
    base, order, ident = _SCOPES[scope.name]
    value, last_id = parse_cursor(before)
    sql = (f"SELECT {_TILE} {base} AND ({order}, {ident}) < (:value, :id) "
           f"ORDER BY {order} DESC, {ident} DESC LIMIT :limit")
    rows = conn.execute(sql, {"value": value, "id": last_id, "limit": limit, "album": scope.album_id,
                              "person": scope.person_id, "place": scope.place_id, "country": scope.country}).fetchall()
    return [Tile(*r) for r in rows]


def neighbors(conn: apsw.Connection, scope: Scope, asset_id: int) -> tuple[int | None, int | None]:
    """(newer, older) asset ids next to ``asset_id`` in ``scope``, for the viewer's arrows."""
    base, order, ident = _SCOPES[scope.name]
    params = {"album": scope.album_id, "person": scope.person_id, "place": scope.place_id, "country": scope.country}
    return keyset_neighbors(conn, base, order, ident, params, asset_id)


def keyset_neighbors(conn: apsw.Connection, base: str, order: str, ident: str, params: dict,
                     asset_id: int) -> tuple[int | None, int | None]:
    """(newer, older) ids next to ``asset_id`` in the listing ``SELECT … {base}`` sorted by
    (``order``, ``ident``) descending; ``base``/``order``/``ident`` are constant SQL text,
    ``params`` the named parameters ``base`` uses. Shared with share links' viewer."""
    params = {**params, "id": int(asset_id)}
    current = conn.execute(f"SELECT {order} {base} AND {ident} = :id", params).fetchone()
    if current is None:
        return None, None
    params["value"] = current[0]
    older = conn.execute(f"SELECT {ident} {base} AND ({order}, {ident}) < (:value, :id) "
                         f"ORDER BY {order} DESC, {ident} DESC LIMIT 1", params).fetchone()
    newer = conn.execute(f"SELECT {ident} {base} AND ({order}, {ident}) > (:value, :id) "
                         f"ORDER BY {order} ASC, {ident} ASC LIMIT 1", params).fetchone()
    return (newer[0] if newer else None), (older[0] if older else None)


def month_index(conn: apsw.Connection) -> list[tuple[int, list[tuple[int, int]]]]:
    """[(year, [(month, count), …]), …] newest first, for the timeline's scrubber."""
    years: dict[int, list[tuple[int, int]]] = {}
    for ym, n in conn.execute(
        f"SELECT substr(local_date, 1, 7) AS ym, count(*) FROM assets a "
        f"WHERE {VISIBLE} AND local_date IS NOT NULL GROUP BY ym ORDER BY ym DESC"
    ):
        years.setdefault(int(ym[:4]), []).append((int(ym[5:7]), n))
    return list(years.items())


def tiles_by_ids(conn: apsw.Connection, ids: list[int]) -> list[Tile]:
    """Tiles for ``ids`` in the given order (search results, ranked elsewhere)."""
    found: dict[int, Tile] = {}
    for chunk, marks in id_chunks(ids):
        for row in conn.execute(f"SELECT {_TILE} FROM assets a WHERE a.id IN ({marks})", chunk):
            found[row[0]] = Tile(*row)
    return [found[i] for i in ids if i in found]
