"""Start the app even when the storage is missing, in a clear "storage missing" state.

When the data folder is not there (an unplugged USB SSD: see :mod:`photobox.datadir`)
the server must neither create an empty library nor crash-loop. It starts, answers every
page with a 503 page that says what is missing and what to do (``/healthz`` answers
``{"status": "storage-missing"}``), and checks again every few seconds; once the disk is
back it opens the database and starts the scheduler as usual.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from photobox.datadir import StorageMissingError

if TYPE_CHECKING:
    from litestar import Litestar

    from photobox.core import Photobox

__all__ = ["StorageGateMiddleware", "start", "stop"]

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


async def _open(app: Litestar, box: Photobox) -> None:
    await asyncio.to_thread(box.open)
    await box.scheduler.start()
    app.state.storage_missing = None
    app.state.pb_opened = True


async def _wait_for_storage(app: Litestar, box: Photobox) -> None:
    while True:
        await asyncio.sleep(RETRY_SECONDS)
        try:
            await _open(app, box)
        except StorageMissingError as exc:
            app.state.storage_missing = str(exc)
            continue
        log.warning("the storage is back: photobox is serving %s", box.data_dir)
        return


async def start(app: Litestar, box: Photobox) -> None:
    """The lifespan's start: open the box and start the scheduler, or wait for the storage."""
    box.serving = True
    app.state.pb_opened = False
    app.state.storage_missing = None
    try:
        await _open(app, box)
    except StorageMissingError as exc:
        log.error("storage missing: %s", exc)
        app.state.storage_missing = str(exc)
        app.state.pb_storage_waiter = asyncio.create_task(_wait_for_storage(app, box), name="photobox-storage-wait")


async def stop(app: Litestar, box: Photobox) -> None:
    """The lifespan's end: stop the scheduler and close the box if they were started."""
    waiter = getattr(app.state, "pb_storage_waiter", None)
    if waiter is not None:
        waiter.cancel()
    if app.state.pb_opened:
        await box.scheduler.stop()
        await asyncio.to_thread(box.close)


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Storage missing · photobox</title>
<link rel="stylesheet" href="/static/css/app.css"></head><body><main id="main" class="narrow">
<section class="card storage-missing" role="alert"><h1>Storage missing</h1><p>{message}</p>
<p>photobox has not created or changed anything. It checks again every few seconds and starts by itself once the
storage is back; reload this page then.</p></section></main></body></html>"""


class StorageGateMiddleware(ASGIMiddleware):
    """While the storage is missing, answer 503 with an explanation (static files still load)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        missing = getattr(scope["litestar_app"].state, "storage_missing", None)
        path = scope.get("path", "")
        if not missing or path.startswith("/static/"):
            await next_app(scope, receive, send)
            return
        if path == "/healthz" or path.startswith("/api/"):
            body = json.dumps({"status": "storage-missing", "detail": missing}).encode()
            ctype = b"application/json"
        else:
            body = _PAGE.format(message=html.escape(missing)).encode()
            ctype = b"text/html; charset=utf-8"
        start: HTTPResponseStartEvent = {
            "type": "http.response.start", "status": 503,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"5"), (b"cache-control", b"no-store")]}
        await send(start)
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        await send(end)
