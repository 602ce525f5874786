"""Offline reverse geocoding: GPS position → nearest town (city, region, country).

Cities live in ``geo_cities`` (in the places file, :mod:`photobox.places.gazetteer`) with an
R*Tree (``geo_cities_xyz``) over their position as a 3-D unit vector. A great-circle radius
r around a point is a cap of the sphere, and that cap lies inside the axis-aligned cube of
half-side ``chord(r) = 2·sin(r / 2R)`` around the point's vector. So one box query returns
every city within r, the exact haversine distance ranks them, and nothing special happens
at the antimeridian (179.9° and -179.9° are close vectors) or the poles (every longitude
meets at one vector), where a latitude/longitude box breaks.

The search widens in steps (:data:`RADII_KM`): a city found within the current radius is
the nearest one (a closer one would be in the same box), so dense regions answer from a
small box and only remote places pay for the big one. Beyond :data:`MAX_KM` a photo has no
place: a town 300 km away says nothing useful about a photo at sea or on an ice cap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import apsw

__all__ = ["City", "EARTH_RADIUS_KM", "MAX_KM", "RADII_KM", "chord", "country_name", "haversine_km",
           "installed", "nearest", "to_xyz"]

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
#: No place is given to a position farther than this from every town in the gazetteer.
MAX_KM = 100.0
#: Search radii tried in turn (the last one is :data:`MAX_KM`).
RADII_KM = (8.0, 30.0, MAX_KM)

_COUNTRIES_FILE = Path(__file__).with_name("countries.tsv")


@dataclass(frozen=True, slots=True)
class City:
    """The nearest town to a position, and how far it is."""

    id: int
    name: str
    admin1: str
    admin2: str
    country_code: str
    lat: float
    lon: float
    distance_km: float

    @property
    def country(self) -> str:
        return country_name(self.country_code)


def to_xyz(lat: float, lon: float) -> tuple[float, float, float]:
    """A position in degrees as a unit vector (x towards 0°/0°, z towards the north pole)."""
    phi, lam = math.radians(lat), math.radians(lon)
    c = math.cos(phi)
    return c * math.cos(lam), c * math.sin(lam), math.sin(phi)


def chord(km: float) -> float:
    """Straight-line distance on the unit sphere between two points ``km`` apart on the surface."""
    return 2.0 * math.sin(min(math.pi, km / EARTH_RADIUS_KM) / 2.0)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine: accurate at small distances too)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


_BOX_SQL = (
    "SELECT c.id, c.name, c.admin1, c.admin2, c.country_code, c.lat, c.lon FROM geo_cities_xyz r "
    "JOIN geo_cities c ON c.id = r.id "
    "WHERE r.minx <= :x2 AND r.maxx >= :x1 AND r.miny <= :y2 AND r.maxy >= :y1 AND r.minz <= :z2 AND r.maxz >= :z1"
)


def nearest(conn: apsw.Connection, lat: float, lon: float, *, max_km: float = MAX_KM) -> City | None:
    """The town nearest to (lat, lon) within ``max_km``, or None (none that close, or a
    position that is not on Earth)."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90:
        return None
    x, y, z = to_xyz(lat, lon)
    for radius in (*(r for r in RADII_KM if r < max_km), max_km):
        # float32 boxes in the R*Tree are rounded outward, so a small pad is all that is needed
        # against rounding of our own bounds.
        h = chord(radius) + 1e-6
        best: City | None = None
        for row in conn.execute(_BOX_SQL, {"x1": x - h, "x2": x + h, "y1": y - h, "y2": y + h,
                                           "z1": z - h, "z2": z + h}):
            d = haversine_km(lat, lon, row[5], row[6])
            if best is None or d < best.distance_km or (d == best.distance_km and row[0] < best.id):
                best = City(*row, distance_km=d)
        if best is not None and best.distance_km <= radius:
            return best
    return None


def installed(conn: apsw.Connection) -> dict | None:
    """What gazetteer is loaded (source, sha256, rows, when), or None before ``places install``
    (no places file attached: see :mod:`photobox.places.gazetteer`)."""
    try:
        row = conn.execute("SELECT value FROM geo_dataset WHERE key = 'places_dataset'").fetchone()
    except apsw.SQLError:  # no such table: the places file is not there
        return None
    return json.loads(row[0]) if row else None


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    out = {}
    for line in _COUNTRIES_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            out[code] = name
    return out


def country_name(code: str) -> str:
    """English name of an ISO 3166-1 alpha-2 code (GeoNames countryInfo), or the code itself."""
    return _countries().get(code, code)
