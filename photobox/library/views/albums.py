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

from photobox.library import albums as album_store
from photobox.library.timeline import Scope
from photobox.library.views.timeline import render_grid_page
from photobox.web.deps import Box, Read
from photobox.web.params import Id
from photobox.web.render import page

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class AlbumForm(Struct):
    name: str = ""
    description: str = ""
    csrf_token: str = ""


class CoverForm(Struct):
    asset_id: Id
    csrf_token: str = ""


@get("/albums", include_in_schema=False)
async def album_list(request: Request, read: Read) -> Response:
    albums = await read(album_store.list_albums)
    return page(request, "albums.html", albums=albums)


@get("/albums/choices", include_in_schema=False)
async def album_choices(request: Request, read: Read) -> Response:
    albums = await read(album_store.list_albums)
    return page(request, "_album_choices.html", albums=albums)


@get("/albums/options", include_in_schema=False)
async def album_options(request: Request, read: Read) -> Response:
    albums = await read(album_store.list_albums)
    return page(request, "_album_options.html", albums=albums)


@post("/albums", include_in_schema=False)
async def create(box: Box, data: Annotated[AlbumForm, Form]) -> Response:
    album_id = await box.db.write(lambda c: album_store.create_album(c, data.name, now=time.time()))
    return Redirect(f"/albums/{album_id}", status_code=303)


async def _album(read: Read, album_id: int) -> tuple:
    row = await read(album_store.get_album, album_id)
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
    await box.db.write(lambda c: album_store.update_album(c, album_id, data.name, data.description, now=time.time()))
    return Redirect(f"/albums/{album_id}", status_code=303)


@post("/albums/{album_id:int}/cover", include_in_schema=False)
async def set_cover(box: Box, read: Read, album_id: FromPath[int],
                    data: Annotated[CoverForm, Form]) -> Response:
    await _album(read, album_id)
    await box.db.write(lambda c: album_store.set_cover(c, album_id, data.asset_id, now=time.time()))
    return Redirect(f"/photos/{data.asset_id}?in=album-{album_id}", status_code=303)


@post("/albums/{album_id:int}/delete", include_in_schema=False)
async def delete_album(box: Box, read: Read, album_id: FromPath[int]) -> Response:
    await _album(read, album_id)
    await box.db.write(album_store.delete_album, album_id)
    return Redirect("/albums", status_code=303)


ROUTES = [album_list, album_choices, album_options, create, album_page, update, set_cover, delete_album]
