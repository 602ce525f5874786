"""The upload page: pick or drop files and folders; the work happens in static/js/upload.js
against the resumable upload API."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Response

from photobox.library.libraries import MEDIA_EXTENSIONS
from photobox.web.render import page


@get("/upload", include_in_schema=False)
async def upload_page(request: Request) -> Response:
    accept = ",".join(sorted(f".{ext}" for ext in MEDIA_EXTENSIONS)) + ",image/*,video/*"
    return page(request, "upload.html", accept=accept)


ROUTES = [upload_page]
