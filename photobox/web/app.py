"""The Litestar app factory: ``create_app()`` is what granian serves.

Startup order (the lifespan): open the database → migrate → start the scheduler; models
load lazily on first use. Shutdown stops the scheduler (running jobs finish or are handed
back to the queue) and closes the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import apsw
from litestar import Litestar, Request, Response
from litestar.datastructures import CacheControlHeader, State
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from photobox import __version__, auth
from photobox.core import Photobox
from photobox.datadir.storage import DiskFullError
from photobox.db import QueryTimeout
from photobox.db.sql import MissingRow
from photobox.resources import STATIC_DIR, TEMPLATES_DIR
from photobox.settings import Settings, load_settings
from photobox.throttle import GuessThrottle
from photobox.web import basic_auth, storage_gate
from photobox.web.api import server as api_server
from photobox.web.deps import DEPENDENCIES, photobox_of
from photobox.web.params import BodyCutShortMiddleware, PhotoboxRequest, bounded_path_ids
from photobox.web.render import from_htmx, page
from photobox.web.security import AuthMiddleware, SecurityHeadersMiddleware, guard
from photobox.web.views import account, health, jobs, settings_page

__all__ = ["create_app"]

log = logging.getLogger("photobox")


def _path(request: Request) -> str:
    # From the scope, never request.url: building the URL parses the Host header, and an
    # exception handler must not fail again on the malformed Host it is answering.
    return request.scope.get("path", "")


def _wants_html(request: Request) -> bool:
    return not _path(request).startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _not_authorized(request: Request, exc: NotAuthorizedException) -> Response:
    if basic_auth.is_dav_request(request):
        return basic_auth.unauthorized(request)
    if not _wants_html(request) and not from_htmx(request):
        return Response({"status_code": 401, "detail": "authentication required: log in or send an API key"},
                        status_code=401, headers={"WWW-Authenticate": 'Bearer realm="photobox"'})
    target = "/login"
    with photobox_of(request.app).db.reader() as conn:  # one indexed row: fine inline
        if auth.get_owner(conn) is None:
            target = "/setup"
    if target == "/login" and request.method == "GET" and _path(request) != "/":
        from urllib.parse import quote
        query = request.scope.get("query_string", b"").decode("latin-1")
        target += "?next=" + quote(_path(request) + (f"?{query}" if query else ""), safe="/")
    if from_htmx(request):
        return Response("", status_code=401, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def _http_error(request: Request, exc: HTTPException) -> Response:
    extra = getattr(exc, "extra", None)
    if isinstance(extra, list) and extra and exc.status_code == 400:
        # Litestar's "Validation failed for …" alone does not say what to fix: name the fields.
        reasons = "; ".join(f"{e.get('key') or e.get('source') or 'value'}: {e.get('message')}"
                            for e in extra[:5] if isinstance(e, dict))
        exc = HTTPException(status_code=400, detail=f"{exc.detail}: {reasons}" if reasons else exc.detail,
                            headers=exc.headers)
    if _wants_html(request) and not from_htmx(request):
        return page(request, "error.html", status_code=exc.status_code, status=exc.status_code, detail=exc.detail)
    return Response({"status_code": exc.status_code, "detail": exc.detail}, status_code=exc.status_code,
                    headers=getattr(exc, "headers", None) or None)


def _missing_row(request: Request, exc: MissingRow) -> Response:
    return _http_error(request, NotFoundException(str(exc)))


def _disk_full(request: Request, exc: DiskFullError) -> Response:
    return _http_error(request, HTTPException(status_code=507, detail=str(exc)))


def _query_timeout(request: Request, exc: QueryTimeout) -> Response:
    # The web query time limit (photobox.web.deps) stopped a read: the server is fine, the
    # question was too big for it. A 503 says so; a 500 would say photobox is broken.
    log.warning("%s %s stopped: %s", request.method, _path(request), exc)
    return _http_error(request, HTTPException(status_code=503, detail="this took too long; try a narrower view"))


def _database_full(request: Request, exc: Exception) -> Response:
    # SQLITE_FULL: the data disk is full, so no change can be saved (tests/test_disk_full.py).
    log.warning("the disk is full: %s %s could not save its change", request.method, _path(request))
    return _http_error(request, HTTPException(
        status_code=507, detail="the disk is full: photobox cannot save changes until some space is freed"))


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, _path(request), exc_info=exc)
    return _http_error(request, HTTPException(status_code=500, detail="Something went wrong inside photobox; the log has details."))


def create_app(settings: Settings | None = None, *, photobox: Photobox | None = None) -> Litestar:
    """Build the app. Without arguments the settings come from ``PHOTOBOX_*`` (granian's worker)."""
    box = photobox or Photobox(settings or load_settings())
    logging.basicConfig(level=box.settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await storage_gate.start(app, box)  # opens the box, or waits for missing storage (backup)
        log.info("photobox %s serving data folder %s", __version__, box.data_dir)
        try:
            yield
        finally:
            await storage_gate.stop(app, box)

    static = create_static_files_router(
        path="/static", directories=[STATIC_DIR], opt={"public": True}, include_in_schema=False,
        cache_control=CacheControlHeader(max_age=86400),
    )
    return Litestar(
        # The core's own pages, then every feature's (built-ins and plugins alike, see photobox.plugins).
        route_handlers=[
            *health.ROUTES, *account.ROUTES, *settings_page.ROUTES, *jobs.ROUTES, *api_server.ROUTES,
            *(handler for feature in box.features for routes in feature.route_sources for handler in routes()),
            static,
        ],
        lifespan=[lifespan],
        middleware=[SecurityHeadersMiddleware(), storage_gate.StorageGateMiddleware(), BodyCutShortMiddleware(),
                    AuthMiddleware()],
        guards=[guard, bounded_path_ids],
        dependencies=DEPENDENCIES,
        request_class=PhotoboxRequest,
        # One budget for every way a password is tried (login, WebDAV, share links): photobox.throttle.
        state=State({"photobox": box, "password_throttle": GuessThrottle(limit=box.settings.login_attempts)}),
        template_config=TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine),
        plugins=[HTMXPlugin()],
        openapi_config=OpenAPIConfig(
            title="photobox API", version=__version__, path="/api/schema",
            description="The JSON API of photobox. Authenticate with `Authorization: Bearer <API key>` "
                        "(create keys under Settings) or the browser session.",
            # JSON/YAML only: the UI plugins load their scripts from a CDN, and photobox serves
            # everything the browser loads itself.
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"]), YamlRenderPlugin()],
        ),
        exception_handlers={
            NotAuthorizedException: _not_authorized,
            PermissionDeniedException: _http_error,
            HTTPException: _http_error,
            DiskFullError: _disk_full,
            MissingRow: _missing_row,
            QueryTimeout: _query_timeout,
            apsw.FullError: _database_full,
            Exception: _server_error,
        },
        debug=False,
    )
