"""Places in the database: geocoding assets, the countries → cities lists, map points.

Counts and lists cover what the timeline shows (not trashed, not archived, not the video
half of a Live Photo). Every query is bounded: lists by the number of places, map points
by grid cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import apsw

from photobox.library import assets
from photobox.library.assets import VISIBLE
from photobox.places.geocoder import City, country_name, nearest

__all__ = ["Country", "PlaceRow", "any_gps", "cities", "countries", "geocode_asset", "get_place", "map_cells",
           "pending_assets", "place_of_asset"]

@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    count: int
    cover_id: int
    cities: int


@dataclass(frozen=True, slots=True)
class PlaceRow:
    id: int
    country_code: str
    country: str
    region: str
    city: str
    count: int = 0
    cover_id: int | None = None

    @property
    def label(self) -> str:
        return ", ".join(p for p in (self.city, self.region, self.country) if p)


def _place_id(conn: apsw.Connection, city: City) -> int:
    conn.execute(
        "INSERT INTO places (country_code, country, region, city, lat, lon) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (country_code, region, city) DO NOTHING",
        (city.country_code, city.country, city.admin1, city.name, city.lat, city.lon),
    )
    return conn.execute("SELECT id FROM places WHERE country_code = ? AND region = ? AND city = ?",
                        (city.country_code, city.admin1, city.name)).fetchone()[0]


def geocode_asset(conn: apsw.Connection, asset_id: int, lat: float, lon: float, *, now: float) -> City | None:
    """Find and store the place of one asset's position (inside the caller's transaction)."""
    city = nearest(conn, lat, lon)
    place_id = _place_id(conn, city) if city is not None else None
    conn.execute(
        "INSERT INTO asset_places (asset_id, place_id, distance_km, latitude, longitude, geocoded_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (asset_id) DO UPDATE SET place_id = excluded.place_id, "
        "distance_km = excluded.distance_km, latitude = excluded.latitude, longitude = excluded.longitude, "
        "geocoded_at = excluded.geocoded_at",
        (asset_id, place_id, city.distance_km if city else None, lat, lon, now),
    )
    return city


def pending_assets(conn: apsw.Connection, limit: int, *, after_id: int = 0) -> list[tuple[int, float, float]]:
    """Assets with a GPS position that were never geocoded, or whose position changed since,
    in id order after ``after_id``."""
    return conn.execute(
        "SELECT a.id, a.latitude, a.longitude FROM assets a LEFT JOIN asset_places ap ON ap.asset_id = a.id "
        "WHERE a.id > ? AND a.latitude IS NOT NULL AND a.longitude IS NOT NULL "
        "AND (ap.asset_id IS NULL OR ap.latitude != a.latitude OR ap.longitude != a.longitude) "
        "ORDER BY a.id LIMIT ?", (after_id, limit)).fetchall()


_LOST_GPS = ("SELECT ap.asset_id FROM asset_places ap JOIN assets a ON a.id = ap.asset_id "
             "WHERE a.latitude IS NULL OR a.longitude IS NULL")


def any_gps(conn: apsw.Connection) -> bool:
    """Whether any asset has a GPS position (the trash included)."""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM assets WHERE latitude IS NOT NULL)").fetchone()[0])


def has_lost_gps(conn: apsw.Connection) -> bool:
    """Whether some asset has a place but no GPS position any more (its metadata was re-read)."""
    return conn.execute(f"SELECT EXISTS ({_LOST_GPS})").fetchone()[0] == 1


def forget_lost_gps(conn: apsw.Connection) -> int:
    """Drop the places of assets that no longer have a GPS position; return how many."""
    conn.execute(f"DELETE FROM asset_places WHERE asset_id IN ({_LOST_GPS})")
    return conn.changes()


def place_of_asset(conn: apsw.Connection, asset_id: int) -> PlaceRow | None:
    """Where one asset was taken (for the viewer's info panel), or None."""
    row = conn.execute("SELECT p.id, p.country_code, p.country, p.region, p.city FROM asset_places ap "
                       "JOIN places p ON p.id = ap.place_id WHERE ap.asset_id = ?", (asset_id,)).fetchone()
    return PlaceRow(*row) if row else None


def countries(conn: apsw.Connection) -> list[Country]:
    """Countries with photos, most photos first; the cover is the newest photo there."""
    rows = conn.execute(
        "SELECT p.country_code, count(*), a.id, max(a.sort_ts), count(DISTINCT p.id) FROM asset_places ap "
        f"JOIN places p ON p.id = ap.place_id JOIN assets a ON a.id = ap.asset_id WHERE {VISIBLE} "
        "GROUP BY p.country_code ORDER BY 2 DESC, 1").fetchall()
    return [Country(cc, country_name(cc), n, cover, ncities) for cc, n, cover, _, ncities in rows]


def cities(conn: apsw.Connection, country_code: str) -> list[PlaceRow]:
    """The places of one country with photos, most photos first."""
    rows = conn.execute(
        "SELECT p.id, p.country_code, p.country, p.region, p.city, count(*), a.id, max(a.sort_ts) "
        f"FROM places p JOIN asset_places ap ON ap.place_id = p.id JOIN assets a ON a.id = ap.asset_id "
        f"WHERE p.country_code = ? AND {VISIBLE} GROUP BY p.id ORDER BY 6 DESC, p.city", (country_code,)).fetchall()
    return [PlaceRow(*r[:7]) for r in rows]


def get_place(conn: apsw.Connection, place_id: int) -> PlaceRow | None:
    row = conn.execute("SELECT id, country_code, country, region, city FROM places WHERE id = ?",
                       (place_id,)).fetchone()
    return PlaceRow(*row) if row else None


def all_places(conn: apsw.Connection, limit: int = 500) -> list[PlaceRow]:
    """Places with photos, most photos first (the search filter's menu), at most ``limit``."""
    rows = conn.execute(
        "SELECT p.id, p.country_code, p.country, p.region, p.city, count(*) FROM places p "
        "JOIN asset_places ap ON ap.place_id = p.id GROUP BY p.id ORDER BY 6 DESC, p.city LIMIT ?",
        (limit,)).fetchall()
    return [PlaceRow(*r) for r in rows]


#: The lists group every placed photo, which grows with the library (about 50 ms per 20k
#: photos on x86): they are kept until a photo or a place changes.
_cache: dict[tuple, object] = {}


def _version(conn: apsw.Connection) -> tuple:
    return (*assets.version(conn),
            *conn.execute("SELECT count(*), max(geocoded_at) FROM asset_places").fetchone(),
            conn.filename)


def cached(conn: apsw.Connection, what: str, compute):
    """``compute(conn)``, remembered until an asset or a geocoding result changes (the key
    reads two aggregates, a few ms at 100k photos, instead of grouping every placed photo)."""
    key = (what, _version(conn))
    if key not in _cache:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = compute(conn)
    return _cache[key]


def cell_degrees(zoom: int) -> float:
    """Grid cell size for map clustering: about 48 screen pixels at web-mercator ``zoom``."""
    zoom = max(0, min(22, zoom))
    return 360.0 / (2 ** zoom) / (256 / 48)


def map_cells(conn: apsw.Connection, *, south: float, west: float, north: float, east: float, zoom: int,
              limit: int = 2000) -> list[dict]:
    """Photo positions inside a box, aggregated into grid cells of :func:`cell_degrees`.

    Each cell is ``{lat, lon, count, id}`` (the mean position, the number of photos and the
    latest-added photo for its thumbnail). The box may cross the antimeridian (``west > east``).
    At most ``limit`` cells, the fullest first: the answer stays bounded whatever the library.
    """
    south, north = max(-90.0, min(south, north)), min(90.0, max(south, north))
    if east - west >= 360:
        west, east = -180.0, 180.0
    else:
        west = (west + 180.0) % 360.0 - 180.0
        east = (east + 180.0) % 360.0 - 180.0
    cell = cell_degrees(zoom)
    if west <= east:
        lon_clause = "a.longitude BETWEEN :west AND :east"
    else:
        lon_clause = "(a.longitude >= :west OR a.longitude <= :east)"
    rows = conn.execute(
        "SELECT CAST(floor(a.latitude / :cell) AS INTEGER) AS cy, CAST(floor(a.longitude / :cell) AS INTEGER) AS cx, "
        "avg(a.latitude), avg(a.longitude), count(*), max(a.id) FROM assets a "
        f"WHERE a.latitude IS NOT NULL AND a.longitude IS NOT NULL AND {VISIBLE} "
        f"AND a.latitude BETWEEN :south AND :north AND {lon_clause} "
        "GROUP BY cy, cx ORDER BY 5 DESC LIMIT :limit",
        {"cell": cell, "south": south, "north": north, "west": west, "east": east, "limit": limit}).fetchall()
    return [{"lat": round(lat, 5), "lon": round(lon, 5), "count": n, "id": newest}
            for _, _, lat, lon, n, newest in rows if math.isfinite(lat) and math.isfinite(lon)]
