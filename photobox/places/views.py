"""Places: countries → towns with counts and covers, a town's or country's photos, and the
offline photo map with its bounded JSON of clustered points."""

from __future__ import annotations

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response
from msgspec import Struct

from photobox.inputs import int_or_none
from photobox.library.timeline import Scope
from photobox.library.views.timeline import render_grid_page
from photobox.places import store
from photobox.places.geocoder import country_name, installed
from photobox.web.deps import Box, Read
from photobox.web.render import page
from photobox.web.security import map_tile_origin

MAX_TOWNS = 500


def _cached(what: str, compute):
    return lambda conn: store.cached(conn, what, compute)


def _map_context(box) -> dict:
    tile = box.settings.map_tile_url
    return {"map_tile_url": tile if map_tile_origin(tile) else ""}


@get("/places", include_in_schema=False)
async def places_page(request: Request, box: Box, read: Read) -> Response:

    def load(conn):
        info = installed(conn)
        gps = store.any_gps(conn)
        return info, _cached("countries", store.countries)(conn), bool(gps)

    info, countries, any_gps = await read(load)
    from photobox.places.data import DEFAULT_SOURCE

    return page(request, "places.html", dataset=info, countries=countries, any_gps=any_gps,
                places_file=DEFAULT_SOURCE.url.rsplit("/", 1)[-1], **_map_context(box))


def _country_code(code: str) -> str:
    code = code.upper()
    if len(code) != 2 or not code.isalpha():
        raise NotFoundException("no such country")
    return code


@get("/places/{code:str}", include_in_schema=False)
async def country_page(request: Request, read: Read, code: FromPath[str]) -> Response:
    code = _country_code(code)
    cities = await read(_cached(f"cities-{code}", lambda c: store.cities(c, code)))
    if not cities:
        raise NotFoundException("no photos from this country")
    return page(request, "place_country.html", code=code, country=country_name(code), cities=cities[:MAX_TOWNS],
                more_towns=max(0, len(cities) - MAX_TOWNS), total=sum(p.count for p in cities))


@get("/places/{code:str}/photos", include_in_schema=False)
async def country_photos(request: Request, read: Read, code: FromPath[str]) -> Response:
    code = _country_code(code)
    return await render_grid_page(request, read, Scope("country", country=code), title=country_name(code),
                                  crumbs=[("/places", "Places")])


@get("/places/town/{place_id:int}", include_in_schema=False)
async def town_photos(request: Request, read: Read, place_id: FromPath[int]) -> Response:
    place = await read(store.get_place, place_id)
    if place is None:
        raise NotFoundException("no such place")
    return await render_grid_page(request, read, Scope("place", place_id=place_id), title=place.city,
                                  crumbs=[("/places", "Places"), (f"/places/{place.country_code}", place.country)],
                                  subtitle=", ".join(p for p in (place.region, place.country) if p))


class MapCell(Struct):
    lat: float
    lon: float
    count: int
    id: int


class MapPoints(Struct):
    cells: list[MapCell]
    cell_degrees: float
    truncated: bool


def _float(request: Request, name: str, default: float) -> float:
    try:
        value = float(request.query_params.get(name, default))
    except (TypeError, ValueError):
        return default
    return value if value == value and abs(value) < 1e6 else default


MAX_CELLS = 2000
#: At this zoom and below, the whole world's cells are computed once per library change and
#: cut to the visible box in Python: the zoomed-out views read every GPS photo, which is
#: what is slow (about 0.35 s per 100k photos on x86), and they are the views opened most.
CACHED_ZOOM = 5


def _in_box(cell: dict, south: float, west: float, north: float, east: float) -> bool:
    if not south <= cell["lat"] <= north:
        return False
    if east - west >= 360:
        return True
    w, e, lon = ((west + 180) % 360 - 180), ((east + 180) % 360 - 180), cell["lon"]
    return w <= lon <= e if w <= e else (lon >= w or lon <= e)


async def _cells(box: Box, read: Read, *, south: float, west: float, north: float, east: float,
                 zoom: int) -> list[dict]:
    if zoom > CACHED_ZOOM:
        return await read(lambda c: store.map_cells(c, south=south, west=west, north=north, east=east, zoom=zoom,
                                                    limit=MAX_CELLS + 1))
    # Filling the world's cache is not this request's own read: like the search index's mirror,
    # it is built once per library change for every later request, so it runs on the box's
    # database with a longer limit (four times the web's) than a request may ask for.
    world = await box.db.read(_cached(f"map-{zoom}", lambda c: store.map_cells(
        c, south=-90, west=-180, north=90, east=180, zoom=zoom, limit=50_000)), time_limit_ms=read.limit_ms * 4)
    return [c for c in world if _in_box(c, south, west, north, east)][:MAX_CELLS + 1]


@get("/api/places/map", tags=["places"], summary="Photo positions in a box, clustered into grid cells",
     description="Query: south, west, north, east (degrees; west > east crosses the antimeridian) and zoom "
                 "(0-22, web-mercator). Answers at most 2000 cells, the fullest first; each cell is the mean "
                 "position of its photos, their count and one photo id for a thumbnail.")
async def map_points(request: Request, box: Box, read: Read) -> MapPoints:
    zoom = int_or_none(request.query_params.get("zoom"), lo=-1000, hi=1000)  # junk means the default, like the box
    zoom = 2 if zoom is None else max(0, min(22, zoom))
    south, north = sorted((_float(request, "south", -90.0), _float(request, "north", 90.0)))
    west, east = _float(request, "west", -180.0), _float(request, "east", 180.0)
    cells = await _cells(box, read, south=south, west=west, north=north, east=east, zoom=zoom)
    return MapPoints([MapCell(**c) for c in cells[:MAX_CELLS]], store.cell_degrees(zoom), len(cells) > MAX_CELLS)


class PlaceOut(Struct):
    id: int
    city: str
    region: str
    country_code: str
    country: str
    count: int


class CountryOut(Struct):
    code: str
    name: str
    count: int
    cities: int
    cover_id: int


@get("/api/places", tags=["places"], summary="Countries with photos, or the towns of one (?country=CC)")
async def api_places(request: Request, read: Read) -> list[CountryOut] | list[PlaceOut]:
    code = (request.query_params.get("country") or "").upper()
    if code:
        towns = await read(lambda c: store.cities(c, _country_code(code)))
        return [PlaceOut(p.id, p.city, p.region, p.country_code, p.country, p.count) for p in towns]
    countries = await read(store.countries)
    return [CountryOut(c.code, c.name, c.count, c.cities, c.cover_id) for c in countries]


ROUTES = [places_page, country_page, country_photos, town_photos, map_points, api_places]
