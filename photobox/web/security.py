"""Who is asking, and may they: the auth middleware, the app-wide guard and security headers.

Every route requires the owner unless its handler says ``opt={"public": True}`` (login,
setup, health, static files, share links). ``tests/test_security.py`` walks the route
table to keep it that way.

CSRF: a state-changing request authenticated by the session cookie must carry the
session's token, in the ``X-CSRF-Token`` header (HTMX sends it for every request, see
``base.html``) or a ``csrf_token`` form field. Forms shown before login carry a token
bound to the ``pb_anon`` cookie. Requests authenticated by an API key carry no ambient
credential, so they need no token.
"""

from __future__ import annotations

import functools
import secrets
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

from photobox import auth
from photobox.web import proxy
from photobox.web.deps import photobox_of
from photobox.web.params import scope_extra

__all__ = ["Auth", "AuthMiddleware", "SecurityHeadersMiddleware", "SESSION_COOKIE", "ANON_COOKIE",
           "DEVICE_COOKIE", "client_address", "guard", "is_secure", "csrf_token_for", "local_path", "from_this_site",
           "scope_allows"]

SESSION_COOKIE = "pb_session"
ANON_COOKIE = "pb_anon"
#: Marks a browser the owner logged in with (``auth.new_device_token``): see photobox.throttle.
DEVICE_COOKIE = "pb_device"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_CSRF_MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Auth:
    """How the request was authenticated."""

    kind: str  # 'session' | 'api_key' | 'basic' (WebDAV)
    user: auth.User
    csrf_token: str | None = None
    session_token: str | None = None
    api_key_id: int | None = None
    scopes: str = "all"


def _cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return {}
            return {k: m.value for k, m in jar.items()}
    return {}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value.decode("latin-1")
    return None


def _api_key_from(scope: Scope) -> str | None:
    authz = _header(scope, b"authorization")
    if authz and authz[:7].lower() == "bearer ":
        return authz[7:].strip()
    return _header(scope, b"x-api-key")


def _basic_for_dav(scope: Scope) -> str | None:
    """The credentials of an ``Authorization: Basic`` header, only on ``/dav`` (WebDAV clients):
    elsewhere a browser could replay cached Basic credentials in a cross-site form post."""
    if not _is_dav(_full_path(scope)):
        return None
    authz = _header(scope, b"authorization")
    return authz[6:] if authz and authz[:6].lower() == "basic " else None


class AuthMiddleware(ASGIMiddleware):
    """Resolve the session cookie or API key into ``scope["user"]`` / ``scope["auth"]``.

    It never rejects: the :func:`guard` decides, so public routes see who is logged in too.
    """

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        box = photobox_of(scope["litestar_app"])
        scope["user"] = None
        scope["auth"] = None
        key = _api_key_from(scope)
        token = _cookies(scope).get(SESSION_COOKIE)
        if key:
            found = await box.db.read(auth.find_api_key, key)
            if found is not None:
                owner = await box.db.read(auth.get_owner)
                if owner is not None:
                    scope["user"] = owner
                    scope["auth"] = Auth("api_key", owner, api_key_id=found.id, scopes=found.scopes)
                    if found.last_used_at is None or time.time() - found.last_used_at > 300:
                        await box.db.write(auth.mark_api_key_used, found.id)
        elif (basic := _basic_for_dav(scope)) is not None:
            from photobox.web.basic_auth import resolve_basic

            scope["auth"] = await resolve_basic(box, scope, basic)
            scope["user"] = scope["auth"].user if scope["auth"] is not None else None
        elif token:
            session = await box.db.read(auth.find_session, token)
            if session is not None:
                scope["user"] = session.user
                scope["auth"] = Auth("session", session.user, csrf_token=session.csrf_token, session_token=token)
                days = box.settings.session_days
                # Slide the expiry at most once an hour: a write per page view would be waste.
                if session.expires_at - time.time() < days * 86400 - 3600:
                    await box.db.write(lambda c: auth.touch_session(c, token, days=days))
        await next_app(scope, receive, send)


def csrf_token_for(connection: ASGIConnection) -> str | None:
    """The token forms on this page must carry (session-bound, or anonymous before login)."""
    a: Auth | None = connection.scope.get("auth")
    if a is not None and a.kind == "session":
        return a.csrf_token
    anon = scope_extra(connection.scope).get("pb_anon") or connection.cookies.get(ANON_COOKIE)
    if not anon:
        return None
    return auth.anonymous_csrf_token(photobox_of(connection.app).secret_key, anon)


def ensure_anon_cookie(connection: ASGIConnection) -> str:
    """Give a browser without a session an anonymous id for pre-login CSRF tokens."""
    anon = connection.cookies.get(ANON_COOKIE)
    if not anon:
        anon = secrets.token_urlsafe(24)
        scope_extra(connection.scope).update(pb_anon=anon, pb_set_anon=anon)
    return anon


async def _given_csrf(connection: ASGIConnection) -> str | None:
    given = connection.headers.get("x-csrf-token")
    if given:
        return given
    ctype = connection.headers.get("content-type", "")
    from photobox.web.params import content_length

    length = content_length(connection.headers) or 0
    form_like = ctype.startswith("application/x-www-form-urlencoded") or (
        ctype.startswith("multipart/form-data") and 0 < length <= _FORM_CSRF_MAX_BYTES)
    if form_like:
        form = await connection.form()  # type: ignore[attr-defined]
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


_UPLOAD_ROUTES = {("POST", "/api/assets"), ("POST", "/api/assets/check"), ("POST", "/api/uploads"),
                  ("GET", "/api/server"), ("GET", "/api/me")}
#: WebDAV methods by scope (photobox answers these under /dav, see photobox.dav.views). ``read``
#: looks and downloads and changes nothing. ``upload`` is what an auto-upload app needs: list
#: the folder to skip files it sent, make folders, PUT, rename a temporary name (MOVE/COPY),
#: set times, lock, forget a name (DELETE never touches a photo); but never GET, which would
#: hand out the bytes of originals.
_DAV_READ = frozenset({"OPTIONS", "GET", "HEAD", "PROPFIND"})
_DAV_UPLOAD = frozenset({"OPTIONS", "HEAD", "PROPFIND", "PROPPATCH", "MKCOL", "PUT", "DELETE", "MOVE", "COPY",
                         "LOCK", "UNLOCK"})


def _is_dav(path: str) -> bool:
    return path == "/dav" or path.startswith("/dav/")


def scope_allows(scopes: str, method: str, path: str) -> bool:
    """Whether an API key with ``scopes`` (comma-separated, see :data:`auth.API_KEY_SCOPES`) may
    make this request. ``path`` is the full path (``/dav/...`` for WebDAV, not the mount's rest)."""
    granted = {s.strip() for s in (scopes or "").split(",") if s.strip()}
    if "all" in granted:
        return True
    if _is_dav(path):
        return ("read" in granted and method in _DAV_READ) or ("upload" in granted and method in _DAV_UPLOAD)
    if not path.startswith("/api/"):
        return False  # HTML pages and their forms are for the browser session
    if "read" in granted and method in SAFE_METHODS:
        return True
    if "upload" in granted:
        if (method, path) in _UPLOAD_ROUTES:
            return True
        if path.startswith("/api/uploads/") and path.count("/") == 3 and method in {"HEAD", "PATCH", "DELETE"}:
            return True
    return False


def _full_path(scope: Scope) -> str:
    """The request's path; for ``/dav`` the raw one (Litestar runs middleware after routing, and
    the mount cut ``scope["path"]`` to the rest)."""
    raw = (scope.get("raw_path") or b"").split(b"?", 1)[0].decode("latin-1")
    return raw if _is_dav(raw) else scope.get("path", "")


async def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The app-wide guard: authentication (unless public), API key scopes, and CSRF (for unsafe methods)."""
    public = bool(handler.opt.get("public"))
    a: Auth | None = connection.scope.get("auth")
    if not public and a is None:
        raise NotAuthorizedException("log in first")
    # Every key is held to its scope, whichever header carried it (Bearer, X-API-Key, or the
    # Basic password of a WebDAV app); the owner's own password has scope "all".
    if not public and a is not None and a.api_key_id is not None and not scope_allows(
            a.scopes, str(connection.scope.get("method", "GET")), _full_path(connection.scope)):
        raise PermissionDeniedException(f"this API key's scope ({a.scopes}) does not allow this request")
    if connection.scope.get("method", "GET") in SAFE_METHODS or connection.scope["type"] != "http":
        return
    if a is not None and a.kind in ("api_key", "basic"):  # basic: /dav only, see photobox.web.basic_auth
        return
    if handler.opt.get("csrf") == "fetch-metadata" and from_this_site(connection):
        return  # the PWA share target: the browser builds that POST, without our token
    expected = csrf_token_for(connection)
    if not auth.check_csrf(expected, await _given_csrf(connection)):
        raise PermissionDeniedException("the form expired or came from another site (CSRF check failed); reload the page and try again")


def from_this_site(connection: ASGIConnection) -> bool:
    """Whether the browser says this request was not made by another site.

    ``Sec-Fetch-Site`` (sent by current browsers; page scripts cannot set it) must be
    ``same-origin`` or ``none`` (the user acted in the browser or the OS share sheet).
    Without it, ``Origin`` must be this server. Used only where the browser itself builds
    a POST that cannot carry a CSRF token (the PWA share target, ``views/share.py``).
    """
    from urllib.parse import urlsplit

    site = connection.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = connection.headers.get("origin")
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == connection.headers.get("host", "").lower()


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``: redirects after a login or a
    form must never lead off-site (an open redirect helps phishing)."""
    from urllib.parse import urlsplit

    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.netloc:
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


def client_address(scope: Scope) -> str:
    """The client's address, seen through a trusted reverse proxy (:mod:`photobox.web.proxy`)."""
    return proxy.client_address(scope, photobox_of(scope["litestar_app"]).settings.trusted_proxies)


def is_secure(connection: ASGIConnection) -> bool:
    """Whether to mark cookies Secure (setting ``secure_cookies``)."""
    settings = photobox_of(connection.app).settings
    if settings.secure_cookies != "auto":
        return settings.secure_cookies == "always"
    if connection.url.scheme == "https":
        return True
    client = connection.client.host if connection.client else ""
    # Trust X-Forwarded-Proto only from a reverse proxy on the same machine or a trusted one.
    local_or_trusted = client in {"127.0.0.1", "::1"} or proxy.from_trusted_proxy(connection.scope, settings.trusted_proxies)
    return local_or_trusted and connection.headers.get("x-forwarded-proto") == "https"


CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

#: Under ``/s/`` (public share links) the token is in the URL: never send it on as a referrer,
#: and keep the pages out of search engines.
_SHARE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"referrer-policy", b"no-referrer"),
    (b"x-robots-tag", b"noindex, nofollow"),
]


def map_tile_origin(tile_url: str) -> str | None:
    """The origin of the ``map_tile_url`` setting as a CSP source (``{s}`` subdomains become
    ``*.``), or None when unset or not a plain https host."""
    import re
    from urllib.parse import urlsplit

    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "*"))
    if parts.scheme != "https" or not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+(:\d+)?", parts.netloc or ""):
        return None
    return f"https://{parts.netloc}"


@functools.lru_cache(maxsize=4)
def _headers_for(tile_url: str) -> list[tuple[bytes, bytes]]:
    """The security headers; an online map tile source (off by default) may serve images."""
    origin = map_tile_origin(tile_url)
    if origin is None:
        return _HEADERS
    csp = CSP.replace("img-src 'self' data: blob:", f"img-src 'self' data: blob: {origin}")
    return [(b"content-security-policy", csp.encode()), *(h for h in _HEADERS if h[0] != b"content-security-policy")]


class SecurityHeadersMiddleware(ASGIMiddleware):
    """Security headers on every response, the anonymous CSRF cookie when one was made, and
    a ``Server-Timing`` header with the time spent in photobox (``scripts/bench web`` reads it)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        path = scope.get("path", "")
        public_share = path.startswith("/s/")
        box = photobox_of(scope["litestar_app"]) if "litestar_app" in scope else None
        security_headers = _headers_for(box.settings.map_tile_url) if box is not None else _HEADERS
        secure_always = box is not None and box.settings.secure_cookies == "always"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()))
                present = {name.lower() for name, _ in headers}
                if public_share:  # share pages: the token in the URL must not leak, nor be indexed
                    headers.extend(h for h in _SHARE_HEADERS if h[0] not in present)
                    present.update(h[0] for h in _SHARE_HEADERS)
                headers.extend(h for h in security_headers if h[0] not in present)
                anon = scope_extra(scope).get("pb_set_anon")
                if anon:
                    secure = "; Secure" if scope.get("scheme") == "https" or secure_always else ""
                    cookie = f"{ANON_COOKIE}={anon}; Path=/; HttpOnly; SameSite=Lax; Max-Age=86400{secure}"
                    headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = headers
            await send(message)

        if "\x00" in path:
            # A NUL byte (%00) in a path is never legitimate; refuse it before any handler
            # (Litestar's static files answered 500 "embedded null byte").
            start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 400,
                                             "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
            await send_with_headers(start)
            body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"bad request: NUL in path",
                                           "more_body": False}
            await send_with_headers(body)
            return
        await next_app(scope, receive, send_with_headers)
