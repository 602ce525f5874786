"""The photo grids: timeline, favourites, archive, trash (albums reuse them), with infinite
scroll, the year/month scrubber, and the bulk actions of selection mode."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.library import actions, albums, assets, timeline
from photobox.library.memories import home_memories
from photobox.library.paths import original_path
from photobox.library.timeline import Scope, Tile
from photobox.web.deps import Box, Read
from photobox.web.files import stream_zip
from photobox.web.params import Id
from photobox.web.render import page
from photobox.web.security import local_path

PAGE_SIZE = 150
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
TITLES = {"timeline": "Photos", "favorites": "Favourites", "archive": "Archive", "trash": "Trash"}


@dataclass(slots=True)
class Day:
    date: str
    label: str
    month_label: str | None
    continued: bool
    tiles: list[Tile] = field(default_factory=list)


def day_label(iso: str | None) -> str:
    if not iso:
        return "Unknown date"
    d = date.fromisoformat(iso)
    today = date.today()
    if d == today:
        return "Today"
    if (today - d).days == 1:
        return "Yesterday"
    return f"{d.strftime('%a')}, {d.day} {MONTHS[d.month - 1][:3]}" + (f" {d.year}" if d.year != today.year else "")


def group_days(tiles: list[Tile], last_day: str | None, *, by_trash: bool = False) -> list[Day]:
    """Tiles in days (local date), with a month heading where the month changes.

    ``last_day`` is the day the previous page ended on, so a day split across pages
    continues without a second heading.
    """
    days: list[Day] = []
    prev = last_day
    for tile in tiles:
        key = (time.strftime("%Y-%m-%d", time.gmtime(tile.trashed_at)) if by_trash and tile.trashed_at
               else tile.local_date) or ""
        if days and days[-1].date == key:
            days[-1].tiles.append(tile)
            continue
        month = None
        if key[:7] != (prev or "")[:7] and key:
            month = f"{MONTHS[int(key[5:7]) - 1]} {key[:4]}"
        days.append(Day(key, ("Deleted " if by_trash else "") + day_label(key or None), month, key == prev, [tile]))
        prev = key
    return days


_month_cache: dict[str, object] = {"key": None, "value": []}


async def months(read: Read) -> list:
    """The scrubber's years and months, cached until an asset changes."""
    key = await read(assets.version)
    if _month_cache["key"] != key:
        _month_cache["value"] = await read(timeline.month_index)
        _month_cache["key"] = key
    return _month_cache["value"]  # type: ignore[return-value]


async def grid_context(read: Read, scope: Scope, before: str | None, last_day: str | None) -> dict:
    tiles = await read(lambda c: timeline.page(c, scope, before=before, limit=PAGE_SIZE))
    days = group_days(tiles, last_day, by_trash=scope.by_trash_time)
    more = tiles[-1].cursor if len(tiles) == PAGE_SIZE else None
    return {"days": days, "scope": scope, "more": more, "last_day": days[-1].date if days else last_day,
            "empty": not tiles and before is None}


async def render_grid_page(request: Request, read: Read, scope: Scope, *, before: str | None = None,
                           **extra) -> Response:
    """A grid page (timeline, favourites, an album, a person…): its first page of tiles by day."""
    context = await grid_context(read, scope, before, None)
    if scope.name == "timeline":
        context["months"] = await months(read)
    return page(request, "grid_page.html", title=extra.pop("title", TITLES.get(scope.name, "Photos")),
                jump=before, **context, **extra)


@get("/", include_in_schema=False)
async def home(request: Request, box: Box, read: Read, at: FromQuery[str | None] = None) -> Response:
    before = None
    if at and len(at) == 7 and at[:4].isdigit() and at[5:7].isdigit() and 1 <= int(at[5:7]) <= 12:
        before = timeline.month_cursor(int(at[:4]), int(at[5:7]))
    shown = await home_memories(box, read) if before is None else []
    return await render_grid_page(request, read, Scope("timeline"), before=before, memories=shown)


@get("/favorites", include_in_schema=False)
async def favorites(request: Request, read: Read) -> Response:
    return await render_grid_page(request, read, Scope("favorites"))


@get("/archive", include_in_schema=False)
async def archive(request: Request, read: Read) -> Response:
    return await render_grid_page(request, read, Scope("archive"))


@get("/trash", include_in_schema=False)
async def trash(request: Request, box: Box, read: Read) -> Response:
    return await render_grid_page(request, read, Scope("trash"), trash_days=box.settings.trash_days)


@get("/grid", include_in_schema=False)
async def grid_more(request: Request, read: Read, before: FromQuery[str | None] = None,
                    day: FromQuery[str | None] = None) -> Response:
    """The next page of any grid (HTMX infinite scroll)."""
    context = await grid_context(read, Scope.parse(request.query_params.get("in")), before, day)
    return page(request, "_grid.html", **context)


class BulkForm(Struct):
    action: str
    ids: list[Id] | Id = []
    album_id: Id | None = None
    album_name: str = ""
    back: str = "/"
    csrf_token: str = ""


@post("/assets/bulk", include_in_schema=False)
async def bulk(request: HTMXRequest, box: Box,
               data: Annotated[BulkForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
    """Selection mode and viewer buttons: favourite, archive, trash, restore, delete, albums."""
    ids = [data.ids] if isinstance(data.ids, int) else list(data.ids)
    if not ids:
        raise ClientException("nothing selected")
    if len(ids) > 50_000:
        raise ClientException("too many at once")
    now = time.time()
    album = data.album_id
    if data.action in assets.ACTIONS:
        await box.db.write(lambda c: assets.apply_action(c, data.action, ids, now=now))
    elif data.action == "album_add" and album:
        await box.db.write(lambda c: albums.add_to_album(c, album, ids, now=now))
    elif data.action == "album_remove" and album:
        await box.db.write(lambda c: albums.remove_from_album(c, album, ids, now=now))
    elif data.action == "album_new":
        def create(c):
            album_id = albums.create_album(c, data.album_name or "New album", now=now)
            albums.add_to_album(c, album_id, ids, now=now)
            return album_id
        album_id = await box.db.write(create)
        data.back = f"/albums/{album_id}"
    elif data.action == "delete":
        import asyncio

        await asyncio.to_thread(actions.purge, box, ids)
    else:
        raise ClientException(f"unknown action {data.action!r}")
    back = local_path(data.back)
    if request.htmx:
        return Response("", status_code=204, headers={"HX-Location": back} if data.action == "album_new"
                        else {"HX-Refresh": "true"})
    return Redirect(back, status_code=303)


class DownloadForm(Struct):
    ids: list[Id] | Id = []
    csrf_token: str = ""


@post("/assets/download", include_in_schema=False, status_code=200)
async def download(box: Box, read: Read,
                   data: Annotated[DownloadForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
    """The selected originals as one zip, streamed (never built in memory or on disk)."""
    ids = [data.ids] if isinstance(data.ids, int) else list(data.ids)
    if not ids:
        raise ClientException("nothing selected")

    def entries(conn):
        out = []
        for _asset_id, lib, rel, name in assets.file_rows(conn, ids):
            try:
                out.append((name, original_path(box, conn, lib, rel)))
            except (ValueError, KeyError):  # a stored path that leaves its library: skip it
                continue
        return out

    files = await read(entries)
    if not files:
        raise NotFoundException("none of those photos exist")
    return stream_zip(files, f"photobox-{time.strftime('%Y%m%d-%H%M%S')}.zip")


ROUTES = [home, favorites, archive, trash, grid_more, bulk, download]
