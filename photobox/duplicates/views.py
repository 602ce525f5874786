"""The duplicates review page and the "On this day" slideshow.

``/duplicates`` lists groups of near-duplicates (keyset-paginated on the group id) side by
side with what tells copies apart (size, resolution, date, file name, format) and the
suggested keeper. "Keep this one" moves the others to the trash after giving the keeper
their albums, favourite mark and description, in one transaction; "Not duplicates" is
remembered for good. With HTMX the resolved group is removed in place.
"""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.duplicates import store
from photobox.library import memories
from photobox.web.deps import Box, Read
from photobox.web.params import Id
from photobox.web.render import page

PAGE_SIZE = 20
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class KeepForm(Struct):
    keeper: Id
    csrf_token: str = ""


class DismissForm(Struct):
    csrf_token: str = ""


@get("/duplicates", include_in_schema=False)
async def duplicates_page(request: Request, read: Read, after: FromQuery[Id] = 0) -> Response:

    def load(conn):
        groups = store.list_groups(conn, after=after, limit=PAGE_SIZE)
        pending = conn.execute("SELECT 1 FROM jobs WHERE kind = 'dupes' AND state IN ('queued', 'running') "
                               "LIMIT 1").fetchone() is not None
        return groups, store.count_groups(conn), pending

    groups, total, pending = await read(load)
    more = groups[-1].id if len(groups) == PAGE_SIZE else None
    return page(request, "duplicates.html", block="groups" if after else None, groups=groups, total=total,
                more=more, pending=pending, after=after)


def _done(request: HTMXRequest) -> Response:
    if request.htmx:
        return Response("", status_code=200, media_type="text/html")  # hx-swap removes the group
    return Redirect("/duplicates", status_code=303)


@post("/duplicates/{group_id:int}/keep", include_in_schema=False)
async def keep(request: HTMXRequest, box: Box, group_id: FromPath[int], data: Annotated[KeepForm, Form]) -> Response:
    try:
        await box.db.write(lambda c: store.keep_one(c, group_id, data.keeper, now=time.time()))
    except LookupError as exc:
        raise ClientException(str(exc)) from None
    return _done(request)


@post("/duplicates/{group_id:int}/dismiss", include_in_schema=False)
async def dismiss(request: HTMXRequest, box: Box, group_id: FromPath[int],
                  data: Annotated[DismissForm, Form]) -> Response:
    try:
        await box.db.write(lambda c: store.dismiss_group(c, group_id, now=time.time()))
    except LookupError as exc:
        raise NotFoundException(str(exc)) from None
    return _done(request)


@get("/memories/{memory_id:int}", include_in_schema=False)
async def slideshow(request: Request, read: Read, memory_id: FromPath[int], i: FromQuery[int] = 0) -> Response:
    """A full-screen slideshow; without JavaScript each photo is its own page (``?i=``)."""
    found = await read(memories.get_memory, memory_id)
    if found is None or not found[1]:
        raise NotFoundException("this memory is no longer there")
    memory, photos = found
    i = max(0, min(i, len(photos) - 1))
    return page(request, "slideshow.html", memory=memory, photos=photos, index=i)


ROUTES = [duplicates_page, keep, dismiss, slideshow]
