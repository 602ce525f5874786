"""``/healthz`` for systemd, the Pi image's first-boot page and monitoring."""

from __future__ import annotations

from litestar import Request, get

from photobox import __version__
from photobox.db import schema_version


@get("/healthz", opt={"public": True}, include_in_schema=False, cache=False)
async def healthz(request: Request) -> dict:
    box = request.app.state.photobox
    version = await box.db.read(schema_version, time_limit_ms=1000)
    return {"status": "ok", "version": __version__, "schema": version}


ROUTES = [healthz]
