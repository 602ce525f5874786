"""Client input in the web app: the rules of :mod:`photobox.inputs`, answered with a clear 4xx.

* :data:`Id` / :data:`Count` / :data:`OptionalId`: the type of every id, size or count a
  handler declares (path, query, form or JSON field): a non-negative SQLite integer.
* :func:`bounded_path_ids`: an app-wide guard, so an id in a path beyond SQLite's range is
  a 404 on every route, including routes added later.
* :func:`parse_int`, :func:`query_int`, :func:`content_length`: integers read by hand from
  text (query strings, headers): ASCII digits only, within bounds, else 400.
* :class:`PhotoboxRequest`: the app's request class, an HTMX request (``request.htmx`` is
  truthy for a request HTMX made, and holds its headers); its ``json()`` refuses bodies
  larger than :data:`MAX_JSON_BYTES` (413) or nested deeper than :data:`MAX_JSON_DEPTH` (400).
* :class:`BodyCutShortMiddleware`: a body that ends before its Content-Length (the client
  closed its side early) is a 400 for every route, not Litestar's 500 "client disconnected".

File times go through :func:`photobox.inputs.parse_time`; handlers turn its ValueError
into a 400 that repeats its message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.middleware import ASGIMiddleware
from litestar.params import Parameter
from litestar.plugins.htmx import HTMXRequest
from msgspec import Meta

from photobox.inputs import INT64_MAX, int_or_none, json_depth_exceeds

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler
    from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

__all__ = ["BodyCutShort", "BodyCutShortMiddleware", "Count", "Id", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "OptionalId", "PhotoboxRequest", "bounded_path_ids",
           "content_length", "parse_int", "query_int", "scope_extra"]

#: An id of a row (asset, album, person, face…): what SQLite can hold, never negative. The
#: bounds are stated twice because msgspec checks ``Meta`` (form and JSON fields) while
#: Litestar checks ``Parameter`` (query and path parameters).
Id = Annotated[int, Meta(ge=0, le=INT64_MAX), Parameter(ge=0, le=INT64_MAX)]
#: An optional id in a query string (Litestar drops the bounds of ``Id | None`` there).
OptionalId = Annotated[int | None, Parameter(ge=0, le=INT64_MAX)]
#: A size, count or offset sent by a client: the same bounds as an id.
Count = Id

#: JSON request bodies photobox takes are small (5000 checksums is about 250 kB).
MAX_JSON_BYTES = 1 << 20
#: Deeper than any JSON photobox reads; far below the decoder's recursion limit.
MAX_JSON_DEPTH = 32


def parse_int(text: str | None, *, name: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    """An integer written in ASCII digits, within ``lo``..``hi``.

    Raises:
        ClientException: absent, not a plain integer (Unicode digits, exponents, spaces
            inside) or out of range; the message names ``name`` and the bounds.
    """
    value = int_or_none(text, lo=lo, hi=hi)
    if value is None:
        shown = (text or "").strip()
        shown = shown if len(shown) <= 40 else shown[:40] + "…"
        raise ClientException(f"{name} must be a whole number from {lo} to {hi} (got {shown!r})")
    return value


def query_int(request: Request, name: str, default: int, *, lo: int = 0, hi: int = INT64_MAX) -> int:
    """The query parameter ``name`` as an integer (see :func:`parse_int`); ``default`` when absent or empty."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    return parse_int(text, name=name, lo=lo, hi=hi)


def content_length(headers: Any, default: int | None = None) -> int | None:
    """The request's Content-Length, or ``default`` when absent.

    Raises:
        ClientException: present but not a plain non-negative integer.
    """
    text = headers.get("content-length")
    if text is None or text == "":
        return default
    return parse_int(text, name="Content-Length")


async def bounded_path_ids(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """App-wide guard: an integer path parameter SQLite cannot hold names nothing (404)."""
    for name, value in connection.path_params.items():
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise NotFoundException(f"nothing has this {name}: ids are at most {INT64_MAX}")


class PhotoboxRequest(HTMXRequest):
    """The app's request class: ``request.htmx`` (litestar-htmx) says whether HTMX sent it,
    and JSON bodies are bounded in size and depth before decoding."""

    async def json(self) -> Any:
        body = await self.body()
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(status_code=413, detail=f"the JSON body is larger than {MAX_JSON_BYTES} bytes")
        if json_depth_exceeds(body, MAX_JSON_DEPTH):
            raise ClientException(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        return await super().json()


class BodyCutShort(ClientException):
    """The request body ended before all of it arrived (raised from ``receive``)."""


class BodyCutShortMiddleware(ASGIMiddleware):
    """Turn a disconnect in the middle of a request body into :class:`BodyCutShort` (400).

    A client that sends fewer bytes than its Content-Length and closes its side (a crashed
    script, a proxy giving up) still reads the answer; Litestar would call that a 500
    ("client disconnected prematurely") and WebDAV would answer nothing. Raised from
    ``receive`` itself, so every reader of the body (Litestar's parsers, the streaming
    uploads, the WebDAV mount) stops there, drops what it wrote, and the 400 says why.
    A disconnect after the whole body arrived (a client leaving during a download) passes
    through unchanged.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        received = 0
        complete = False
        announced = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)

        async def checked_receive() -> ReceiveMessage:
            nonlocal received, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = complete or not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not complete:
                complete = True  # say it once; a second read sees the plain disconnect
                expected = f" of the {announced.decode('latin-1')} its Content-Length announced" if announced else ""
                raise BodyCutShort(f"the request body ended after {received} bytes{expected}; "
                                   f"nothing of it was stored: send it again")
            return message

        await next_app(scope, checked_receive, send)


def scope_extra(scope: Any) -> dict[str, Any]:
    """The ASGI scope as a plain dict, for the few values photobox keeps on it between its own
    middleware and handlers (the anonymous CSRF id, a WebDAV client's retry time)."""
    return cast("dict[str, Any]", scope)
