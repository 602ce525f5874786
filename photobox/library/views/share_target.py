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

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromQuery
from litestar.response import Redirect

from photobox.datadir.storage import DiskFullError
from photobox.library import assets
from photobox.library.ingest import RejectedFile, ingest_temp_file
from photobox.resources import STATIC_DIR
from photobox.web.deps import Box, Read
from photobox.web.intake import Multipart, receive_body
from photobox.web.params import Count, parse_int
from photobox.web.render import page

__all__ = ["ROUTES"]

MAX_FILES = 200
_FILE_FIELDS = ("media", "file", "files")


@get("/sw.js", opt={"public": True}, include_in_schema=False, cache=False)
async def service_worker() -> Response:
    """The service worker, at the root so its scope is the whole app (``/``)."""
    body = await asyncio.to_thread((STATIC_DIR / "sw.js").read_bytes)
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


#: The share sheet's multipart body: up to :data:`MAX_FILES` photos and videos.
SHARE_FORM = Multipart(_FILE_FIELDS, what="the share", max_files=MAX_FILES, max_segments=MAX_FILES + 10,
                       not_multipart="share photos or videos: the request must be multipart/form-data")


async def _store_files(box: Box, request: Request) -> tuple[list[int], list[int], list[str]]:
    """Stream every file of the multipart body to tmp/ and ingest it; (created, duplicates, refused)."""
    body = await receive_body(box, request.stream(), request.headers, form=SHARE_FORM)
    created: list[int] = []
    duplicates: list[int] = []
    refused: list[str] = []
    for i, file in enumerate(body.files):
        file_name = file.name or "shared"
        try:
            result = await asyncio.to_thread(ingest_temp_file, box, file.path, file.sha1, file.size,
                                             original_name=file_name)
        except RejectedFile as exc:
            refused.append(f"{file_name}: {exc}")
            continue
        except DiskFullError as exc:
            for later in body.files[i + 1:]:
                later.path.unlink(missing_ok=True)
            raise HTTPException(status_code=507, detail=str(exc)) from None
        (created if result.status == "created" else duplicates).append(result.asset_id)
    return created, duplicates, refused


@post("/share", include_in_schema=False, request_max_body_size=None, opt={"csrf": "fetch-metadata"})
async def share_target(request: Request, box: Box) -> Response:
    """The manifest's share target: store the shared files, then show what happened."""
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
async def share_done(request: Request, read: Read, new: FromQuery[str] = "", dup: FromQuery[str] = "",
                     refused: FromQuery[Count] = 0) -> Response:
    """What a share saved: the new photos, the ones photobox had already, and how many were refused."""
    new_ids, dup_ids = _ids(new, "new"), _ids(dup, "dup")
    wanted = new_ids + dup_ids

    rows = await read(assets.summaries, wanted)
    return page(request, "share.html", new=[rows[i] for i in new_ids if i in rows],
                dup=[rows[i] for i in dup_ids if i in rows], refused=max(0, refused))


ROUTES = [service_worker, share_target, share_done]
