"""The installed web app (PWA): its service worker, and "share to photobox" from the phone.

``static/manifest.webmanifest`` declares a share target: the phone's share sheet POSTs the
picked photos and videos (multipart, field ``media``) to ``/share``, they go through the
same upload pipeline as everything else, and the answer redirects to ``/share/done``,
which shows what was saved.

CSRF: the browser builds that POST itself from the share sheet, with the session cookie
but without photobox's CSRF token. It is accepted without a token only when the browser
says it did not come from another site: ``Sec-Fetch-Site: same-origin`` or ``none`` (a
user action in the browser or the OS, never a web page), or, from a browser that sends no
fetch metadata, an ``Origin`` equal to this server. Those headers cannot be set by page
scripts, and a cross-site form post says ``cross-site`` (and carries no session cookie:
it is ``SameSite=Lax``). Anything else needs the usual token (see ``security.guard``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.params import FromQuery
from litestar.response import Redirect
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from photobox.datadir.storage import DiskFullError, TempWriter, ensure_space
from photobox.library import assets
from photobox.library.ingest import RejectedFile, ingest_temp_file
from photobox.resources import STATIC_DIR
from photobox.web.params import Count, content_length, parse_int
from photobox.web.render import page

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["ROUTES"]

MAX_FILES = 200
_FILE_FIELDS = ("media", "file", "files")


@get("/sw.js", opt={"public": True}, include_in_schema=False, cache=False)
async def service_worker() -> Response:
    """The service worker, at the root so its scope is the whole app (``/``)."""
    body = await asyncio.to_thread((STATIC_DIR / "sw.js").read_bytes)
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


async def _store_files(box: Photobox, request: Request) -> tuple[list[int], list[int], list[str]]:
    """Stream every file of the multipart body to tmp/ and ingest it; (created, duplicates, refused)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
        raise ClientException("share photos or videos: the request must be multipart/form-data")
    boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
    length = content_length(request.headers, -1)
    reserve = box.settings.disk_reserve_bytes
    if length > 0:
        ensure_space(box.path("tmp"), length, reserve)
    stored: list[tuple[Path, bytes, int, str]] = []
    writer: TempWriter | None = None
    name = ""
    try:
        with PushMultipartParser(boundary, content_length=length, max_segment_count=MAX_FILES + 10) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        if event.filename is not None and event.name in _FILE_FIELDS:
                            writer = TempWriter(box.path("tmp"), reserve=reserve)
                            name = event.filename or "shared"
                    elif event is None:
                        if writer is not None:
                            path, checksum, size = await writer.finish()
                            stored.append((path, checksum, size, name))
                            writer = None
                    elif writer is not None:
                        await writer.write(event)
            parser.parse(b"")
    except BaseException as exc:
        if writer is not None:
            writer.discard()
        for path, *_ in stored:
            path.unlink(missing_ok=True)
        if isinstance(exc, MultipartError):
            raise ClientException(f"the share was cut short or malformed: {exc}") from None
        raise
    created: list[int] = []
    duplicates: list[int] = []
    refused: list[str] = []
    for i, (path, checksum, size, file_name) in enumerate(stored):
        try:
            result = await asyncio.to_thread(ingest_temp_file, box, path, checksum, size, original_name=file_name)
        except RejectedFile as exc:
            refused.append(f"{file_name}: {exc}")
            continue
        except DiskFullError as exc:
            for later, *_ in stored[i + 1:]:
                later.unlink(missing_ok=True)
            raise HTTPException(status_code=507, detail=str(exc)) from None
        (created if result.status == "created" else duplicates).append(result.asset_id)
    return created, duplicates, refused


@post("/share", include_in_schema=False, request_max_body_size=None, opt={"csrf": "fetch-metadata"})
async def share_target(request: Request) -> Response:
    """The manifest's share target: store the shared files, then show what happened."""
    box: Photobox = request.app.state.photobox
    created, duplicates, refused = await _store_files(box, request)
    from urllib.parse import urlencode

    query = urlencode({"new": ",".join(map(str, created[:100])), "dup": ",".join(map(str, duplicates[:100])),
                       "refused": len(refused)})
    if refused:
        import logging

        logging.getLogger(__name__).info("share: refused %s", "; ".join(refused)[:2000])
    return Redirect(f"/share/done?{query}", status_code=303)


def _ids(text: str, name: str) -> list[int]:
    return [parse_int(x, name=name) for x in text.split(",")[:100] if x]


@get("/share/done", include_in_schema=False)
async def share_done(request: Request, new: FromQuery[str] = "", dup: FromQuery[str] = "",
                     refused: FromQuery[Count] = 0) -> Response:
    """What a share saved: the new photos, the ones photobox had already, and how many were refused."""
    new_ids, dup_ids = _ids(new, "new"), _ids(dup, "dup")
    wanted = new_ids + dup_ids

    rows = await request.app.state.photobox.db.read(assets.summaries, wanted)
    return page(request, "share.html", new=[rows[i] for i in new_ids if i in rows],
                dup=[rows[i] for i in dup_ids if i in rows], refused=max(0, refused))


ROUTES = [service_worker, share_target, share_done]
