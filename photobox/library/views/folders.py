"""The library's sections of the Settings page: library folders (external libraries: add, scan
now, remove) and storage (where the library is, how full the disk is)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

from litestar import post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response
from msgspec import Struct

from photobox.library import assets, libraries
from photobox.library.paths import UPLOAD_LIBRARY_ID
from photobox.web.deps import Box, Read
from photobox.web.params import Count
from photobox.web.views.settings_page import render_settings

__all__ = ["ROUTES", "libraries_section", "storage_section"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
SECTION = "settings_libraries.html"


class LibraryForm(Struct):
    path: str = ""
    name: str = ""
    exclusions: str = ""
    scan_minutes: Count = 360
    csrf_token: str = ""


def libraries_section(box, conn) -> dict:
    return {"libraries": libraries.list_libraries(conn)}


def storage_section(box, conn) -> dict:
    usage = shutil.disk_usage(box.data_dir)
    count, size, ext_count = assets.library_totals(conn, UPLOAD_LIBRARY_ID)
    return {"storage": {"data_dir": str(box.data_dir), "free": usage.free, "total": usage.total, "uploaded": count,
                        "uploaded_bytes": size, "external": ext_count}}


async def _render(request: HTMXRequest, box: Box, read: Read, **kw) -> Response:
    return await render_settings(request, box, read, block="libraries", block_template=SECTION, **kw)


@post("/settings/libraries", include_in_schema=False)
async def add_library(request: HTMXRequest, box: Box, read: Read,
                      data: Annotated[LibraryForm, Form]) -> Response:
    patterns = [p.strip() for p in data.exclusions.replace(",", "\n").splitlines() if p.strip()]
    try:
        lib_id = await box.db.write(lambda c: libraries.add_library(
            c, Path(data.path), name=data.name, exclusions=[*libraries.DEFAULT_EXCLUSIONS, *patterns],
            scan_minutes=max(0, data.scan_minutes), now=box.clock(), data_dir=box.data_dir))
    except ValueError as exc:
        return await _render(request, box, read, error=str(exc), status_code=400)
    await box.scheduler.enqueue("scan", str(lib_id), force=True)
    return await _render(request, box, read, message="Library added; the first scan has started.")


@post("/settings/libraries/{library_id:int}/scan", include_in_schema=False)
async def scan_library(request: HTMXRequest, box: Box, read: Read,
                       library_id: FromPath[int]) -> Response:
    await box.scheduler.enqueue("scan", str(library_id), force=True)
    return await _render(request, box, read, message="Scan started.")


@post("/settings/libraries/{library_id:int}/remove", include_in_schema=False)
async def remove_library(request: HTMXRequest, box: Box, read: Read,
                         library_id: FromPath[int]) -> Response:
    try:
        await box.db.write(libraries.remove_library, library_id)
    except ValueError as exc:
        return await _render(request, box, read, error=str(exc), status_code=400)
    return await _render(request, box, read,
                         message="Library removed. Its files were not touched; its photos are in the trash.")


ROUTES = [add_library, scan_library, remove_library]
