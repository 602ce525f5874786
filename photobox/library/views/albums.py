"""Albums: the list, one album's page (a grid in album order), and album edits."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.library import actions
from photobox.library.timeline import Scope
from photobox.web.deps import Box, Read
from photobox.web.params import Id
from photobox.web.render import page
from photobox.library.views.timeline import render_grid_page

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class AlbumForm(Struct):
    name: str = ""
    description: str = ""
    csrf_token: str = ""


class CoverForm(Struct):
    asset_id: Id
    csrf_token: str = ""


def _albums(conn) -> list[dict]:
    rows = conn.execute(
        "SELECT al.id, al.name, al.cover_asset_id, a.thumb_version, a.placeholder, "
        "(SELECT count(*) FROM album_assets aa WHERE aa.album_id = al.id) "
        "FROM albums al LEFT JOIN assets a ON a.id = al.cover_asset_id ORDER BY al.updated_at DESC, al.id DESC"
    ).fetchall()
    import base64

    return [{"id": r[0], "name": r[1], "cover": r[2], "thumb_version": r[3] or 0,
             "placeholder": base64.b64encode(r[4]).decode() if r[4] else "", "count": r[5]} for r in rows]


@get("/albums", include_in_schema=False)
async def album_list(request: Request, read: Read) -> Response:
    albums = await read(_albums)
    return page(request, "albums.html", albums=albums)


@get("/albums/choices", include_in_schema=False)
async def album_choices(request: Request, read: Read) -> Response:
    albums = await read(_albums)
    return page(request, "_album_choices.html", albums=albums)


@get("/albums/options", include_in_schema=False)
async def album_options(request: Request, read: Read) -> Response:
    albums = await read(_albums)
    return page(request, "_album_options.html", albums=albums)


@post("/albums", include_in_schema=False)
async def create(box: Box, data: Annotated[AlbumForm, Form]) -> Response:
    album_id = await box.db.write(lambda c: actions.create_album(c, data.name, now=time.time()))
    return Redirect(f"/albums/{album_id}", status_code=303)


async def _album(read: Read, album_id: int) -> tuple:
    row = await read(
        lambda c: c.execute("SELECT id, name, description FROM albums WHERE id = ?", (album_id,)).fetchone())
    if row is None:
        raise NotFoundException("no such album")
    return row


@get("/albums/{album_id:int}", include_in_schema=False)
async def album_page(request: Request, read: Read, album_id: FromPath[int]) -> Response:
    _, name, description = await _album(read, album_id)
    return await render_grid_page(request, read, Scope("album", album_id), title=name, album_description=description)


@post("/albums/{album_id:int}", include_in_schema=False)
async def update(box: Box, read: Read, album_id: FromPath[int],
                 data: Annotated[AlbumForm, Form]) -> Response:
    await _album(read, album_id)
    await box.db.write(lambda c: c.execute(
        "UPDATE albums SET name = ?, description = ?, updated_at = ? WHERE id = ?",
        (data.name.strip()[:200] or "Untitled album", data.description.strip()[:2000], time.time(), album_id)))
    return Redirect(f"/albums/{album_id}", status_code=303)


@post("/albums/{album_id:int}/cover", include_in_schema=False)
async def set_cover(box: Box, read: Read, album_id: FromPath[int],
                    data: Annotated[CoverForm, Form]) -> Response:
    await _album(read, album_id)
    await box.db.write(lambda c: c.execute(
        "UPDATE albums SET cover_asset_id = ?, updated_at = ? WHERE id = ? AND EXISTS "
        "(SELECT 1 FROM album_assets WHERE album_id = ? AND asset_id = ?)",
        (data.asset_id, time.time(), album_id, album_id, data.asset_id)))
    return Redirect(f"/photos/{data.asset_id}?in=album-{album_id}", status_code=303)


@post("/albums/{album_id:int}/delete", include_in_schema=False)
async def delete_album(box: Box, read: Read, album_id: FromPath[int]) -> Response:
    await _album(read, album_id)
    await box.db.write(lambda c: c.execute("DELETE FROM albums WHERE id = ?", (album_id,)))
    return Redirect("/albums", status_code=303)


ROUTES = [album_list, album_choices, album_options, create, album_page, update, set_cover, delete_album]
