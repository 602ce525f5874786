"""``/healthz`` for systemd, the Pi image's first-boot page and monitoring."""

from __future__ import annotations

from litestar import get

from photobox import __version__
from photobox.db import schema_version
from photobox.web.deps import Read


@get("/healthz", opt={"public": True}, include_in_schema=False, cache=False)
async def healthz(read: Read) -> dict:
    version = await read(schema_version, limit_ms=1000)
    return {"status": "ok", "version": __version__, "schema": version}


ROUTES = [healthz]
