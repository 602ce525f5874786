"""The home page (the timeline arrives with the web issue; for now the library summary)."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Response

from photobox.web.render import page


@get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    return page(request, "home.html")


ROUTES = [home]
