"""The search page and ``GET /api/search``: a description, filters, "more like this"."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response
from msgspec import Struct

from photobox.library import albums as album_store
from photobox.library import timeline
from photobox.search import filters as search_filters
from photobox.search.filters import Filters
from photobox.search.service import search
from photobox.web.deps import Box, Read
from photobox.web.params import query_int
from photobox.web.render import page

PAGE = 60


@dataclass(frozen=True, slots=True)
class SearchScope:
    """A tile's viewer link carries the search, so the viewer can move within the results."""

    query: str
    name: str = "search"

    @property
    def key(self) -> str:
        return "search&" + self.query if self.query else "search"


def _params(request: Request) -> tuple[str, int | None, Filters]:
    q = (request.query_params.get("q") or "").strip()[:500]
    like = query_int(request, "like", -1)
    return q, like if like >= 0 else None, Filters.from_query(request.query_params)


def _query_string(q: str, like: int | None, f: Filters, **extra) -> str:
    params = {**({"q": q} if q else {}), **({"like": str(like)} if like is not None else {}), **f.to_query(), **extra}
    return urlencode(params)


def search_params(request: Request) -> tuple[str, int | None, Filters, str]:
    """The search a request asks for, and its query string: ``(q, like, filters, query_string)``."""
    q, like, f = _params(request)
    return q, like, f, _query_string(q, like, f)


@get("/search", include_in_schema=False)
async def search_page(request: HTMXRequest, box: Box, read: Read) -> Response:
    q, like, f = _params(request)
    start = query_int(request, "start", 0)
    outcome = await asyncio.to_thread(search, box, q=q, like=like, f=f, read=read)
    ids = outcome.ids[start:start + PAGE]
    tiles = await read(timeline.tiles_by_ids, ids)
    more = None
    if start + PAGE < len(outcome.ids):
        more = "/search?" + _query_string(q, like, f, start=str(start + PAGE))
    scope = SearchScope(_query_string(q, like, f))
    context: dict[str, Any] = {"q": q, "like": like, "filters": f, "tiles": tiles, "more": more, "scope": scope,
               "message": outcome.message, "ml": box.models.status()}
    if request.htmx:
        block = "more_tiles" if start else "results"
        return page(request, "search.html", block=block, **context)

    def menus(conn):
        from photobox.people.store import list_people
        from photobox.places.store import all_places, cached, countries

        albums = album_store.album_names(conn)
        return (albums, search_filters.cameras(conn), list_people(conn), cached(conn, "countries", countries),
                cached(conn, "all_places", all_places))

    albums, cameras, people, place_countries, places = await read(menus)
    return page(request, "search.html", albums=albums, cameras=cameras, people=people,
                place_countries=place_countries, places=places, **context)


class SearchHit(Struct):
    id: int
    score: float | None


class SearchResponse(Struct):
    results: list[SearchHit]
    ranked: bool
    message: str | None = None


@get("/api/search", tags=["search"], summary="Search by description (q) or similarity (like=ID) with filters",
     description="Filters: from, to (YYYY-MM-DD), type (image|video), fav=1, album=ID, person=ID, camera, "
                 "country (ISO code), place=ID (a town, see /api/places), archived (exclude|include|only); limit (default 100, at most 1000).")
async def api_search(request: Request, box: Box, read: Read) -> SearchResponse:
    q, like, f = _params(request)
    limit = min(1000, max(1, query_int(request, "limit", 100)))
    outcome = await asyncio.to_thread(search, box, q=q, like=like, f=f, limit=limit, read=read)
    scores = outcome.scores or [None] * len(outcome.ids)
    return SearchResponse([SearchHit(i, s) for i, s in zip(outcome.ids, scores)], outcome.ranked, outcome.message)


ROUTES = [search_page, api_search]
