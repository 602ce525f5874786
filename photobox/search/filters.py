"""Search filters: what the search page's controls mean in SQL.

The filters select the set of assets that may appear in results; the vector ranking then
orders that set (``photobox.search.vectors``). Applying the filter first, not after a
top-k pass, is what keeps a selective filter ("videos from 2014 in this album") from
losing results. Every clause is a constant string picked by which filter is set; values
travel as parameters.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import apsw

from photobox.inputs import int_or_none
from photobox.library.assets import NOT_TRASHED, VISIBLE_WITH_ARCHIVED
from photobox.media.camera import camera_name

__all__ = ["Filters", "allowed_ids", "cameras"]


def _day_ts(text: str, *, end: bool) -> float | None:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        return None
    return calendar.timegm(d.timetuple()) + (86400 if end else 0)


@dataclass(slots=True)
class Filters:
    """The filters a search can carry (all optional). Dates are local ``YYYY-MM-DD``."""

    date_from: str = ""
    date_to: str = ""
    kind: str = ""          # '' | 'image' | 'video'
    favorite: bool = False
    album: int | None = None
    camera: str = ""        # a camera's name as listed by :func:`cameras` (``media.camera.camera_name``)
    archived: str = "exclude"  # 'exclude' | 'include' | 'only'
    person: int | None = None
    place: int | None = None  # a town (places.id)
    country: str = ""         # ISO 3166-1 alpha-2 code

    @classmethod
    def from_query(cls, params: Any) -> Filters:
        """From request query parameters (unknown or malformed values are ignored)."""
        def get(name: str) -> str:
            value = params.get(name)
            return value.strip() if isinstance(value, str) else ""

        album = get("album")
        person = get("person")
        place = get("place")
        country = get("country").upper()
        return cls(
            date_from=get("from") if _day_ts(get("from"), end=False) is not None else "",
            date_to=get("to") if _day_ts(get("to"), end=True) is not None else "",
            kind=get("type") if get("type") in ("image", "video") else "",
            favorite=get("fav") in ("1", "true", "on"),
            album=int_or_none(album),
            camera=get("camera")[:200],
            archived=get("archived") if get("archived") in ("exclude", "include", "only") else "exclude",
            person=int_or_none(person),
            place=int_or_none(place),
            country=country if len(country) == 2 and country.isalpha() and country.isascii() else "",
        )

    def to_query(self) -> dict[str, str]:
        """The non-default filters as query parameters (for links and the next page)."""
        out = {}
        for name, key in (("date_from", "from"), ("date_to", "to"), ("kind", "type"), ("camera", "camera")):
            if getattr(self, name):
                out[key] = getattr(self, name)
        if self.favorite:
            out["fav"] = "1"
        if self.album is not None:
            out["album"] = str(self.album)
        if self.person is not None:
            out["person"] = str(self.person)
        if self.place is not None:
            out["place"] = str(self.place)
        if self.country:
            out["country"] = self.country
        if self.archived != "exclude":
            out["archived"] = self.archived
        return out

    @property
    def narrowing(self) -> bool:
        """Whether anything beyond the defaults is set."""
        defaults = Filters()
        return any(getattr(self, f.name) != getattr(defaults, f.name) for f in fields(self))


def _where(conn: apsw.Connection, f: Filters) -> tuple[list[str], dict[str, Any]]:
    clauses = [VISIBLE_WITH_ARCHIVED]
    params: dict[str, Any] = {}
    if f.archived == "exclude":
        clauses.append("a.archived = 0")
    elif f.archived == "only":
        clauses.append("a.archived = 1")
    if f.date_from:
        clauses.append("a.sort_ts >= :from_ts")
        params["from_ts"] = _day_ts(f.date_from, end=False)
    if f.date_to:
        clauses.append("a.sort_ts < :to_ts")
        params["to_ts"] = _day_ts(f.date_to, end=True)
    if f.kind:
        clauses.append("a.kind = :kind")
        params["kind"] = f.kind
    if f.favorite:
        clauses.append("a.favorite = 1")
    if f.album is not None:
        clauses.append("a.id IN (SELECT asset_id FROM album_assets WHERE album_id = :album)")
        params["album"] = f.album
    if f.person is not None:
        clauses.append("a.id IN (SELECT asset_id FROM faces WHERE person_id = :person)")
        params["person"] = f.person
    if f.place is not None:
        clauses.append("a.id IN (SELECT asset_id FROM asset_places WHERE place_id = :place)")
        params["place"] = f.place
    if f.country:
        clauses.append("a.id IN (SELECT ap.asset_id FROM asset_places ap JOIN places p ON p.id = ap.place_id "
                       "WHERE p.country_code = :country)")
        params["country"] = f.country
    if f.camera:
        # The name is made in Python (camera_name), so match the (make, model) pairs that
        # give it: few distinct pairs, found with one scan, instead of a Python call per row.
        clauses.append("(coalesce(a.make, ''), coalesce(a.model, '')) IN "
                       "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:cameras))")
        params["cameras"] = json.dumps([[make or "", model or ""] for make, model, _ in _camera_pairs(conn)
                                        if camera_name(make, model) == f.camera])
    return clauses, params


def allowed_ids(conn: apsw.Connection, f: Filters) -> list[int]:
    """Ids of the assets the filters admit (trash and Live Photo videos never)."""
    clauses, params = _where(conn, f)
    sql = "SELECT a.id FROM assets a WHERE " + " AND ".join(clauses)
    return [i for (i,) in conn.execute(sql, params)]


def filtered_page(conn: apsw.Connection, f: Filters, *, before: tuple[float, int] | None, limit: int) -> list[int]:
    """Without a description: the filtered assets in timeline order, keyset-paginated."""
    clauses, params = _where(conn, f)
    value, last = before or (1e18, 0)
    params.update(value=value, last=last, limit=limit)
    sql = ("SELECT a.id FROM assets a WHERE " + " AND ".join(clauses)
           + " AND (a.sort_ts, a.id) < (:value, :last) ORDER BY a.sort_ts DESC, a.id DESC LIMIT :limit")
    return [i for (i,) in conn.execute(sql, params)]


def _camera_pairs(conn: apsw.Connection) -> list[tuple[str | None, str | None, int]]:
    """(make, model, count) of the assets outside the trash, one row per distinct pair.

    Grouping every asset costs about a second at 100k on a busy 2-core box, so the answer is
    remembered until an asset changes (the places pages' cache, keyed on the assets' version).
    """
    from photobox.places.store import cached

    return cached(conn, "camera_pairs", lambda c: c.execute(
        f"SELECT a.make, a.model, count(*) FROM assets a WHERE {NOT_TRASHED} "
        f"AND (a.make IS NOT NULL OR a.model IS NOT NULL) GROUP BY a.make, a.model").fetchall())


def cameras(conn: apsw.Connection, limit: int = 100) -> list[tuple[str, int]]:
    """Cameras in the library by name with their counts, most used first (for the filter menu).

    Pairs that name the same camera ("Canon" + "Canon EOS 6D", "CANON" + "EOS 6D") count as one.
    """
    counts: dict[str, int] = {}
    for make, model, n in _camera_pairs(conn):
        name = camera_name(make, model)
        if name:
            counts[name] = counts.get(name, 0) + n
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
