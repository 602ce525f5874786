"""``/dav/``: a WebDAV endpoint for phone auto-upload apps (PhotoSync, FolderSync, rclone…).

Litestar routes only the standard HTTP methods, so the whole ``/dav`` tree is one mounted
ASGI handler that dispatches on the method itself (PROPFIND, MKCOL, MOVE, COPY, PROPPATCH,
LOCK and UNLOCK included). It still sits behind photobox's auth middleware and app guard:
:mod:`photobox.web.basic_auth` turns an HTTP Basic credential (an API key, or the owner's
password) into the request's ``Auth``; without one the answer is 401 with
``WWW-Authenticate: Basic``.

The tree: ``/dav/`` holds one collection, ``upload/``; under it clients make folders and
PUT files. Every PUT streams the body to ``data/tmp`` (never whole in memory), then goes
through :func:`~photobox.library.ingest.ingest_temp_file` like any upload (same checksum
dedupe and jobs), and records the name in ``dav_entries`` so listings show what arrived,
with the size and time the client knows. Re-uploading a known photo answers 201/204 so apps
do not retry forever. DELETE forgets listing entries only: an app "freeing space" or a
mirror sync can never destroy originals (photos are deleted in the web app's trash).

Locks are accepted and answered but not kept: there is one user, and Windows, macOS and
davfs2 only write to servers that claim DAV class 2.
"""

from __future__ import annotations

import asyncio
import mimetypes
import shutil
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator
from urllib.parse import SplitResult, quote, unquote, urlsplit

from litestar import Request, Response, asgi
from litestar.exceptions import ClientException
from litestar.response import Stream
from litestar.types import Receive, Scope, Send

from photobox.datadir.storage import DiskFullError
from photobox.dav import props, store
from photobox.dav.store import ROOT, UPLOAD
from photobox.db import QueryTimeout
from photobox.inputs import parse_time
from photobox.library import assets as asset_sql
from photobox.library.ingest import RejectedFile, ingest_temp_file
from photobox.library.paths import original_path
from photobox.web import params, proxy
from photobox.web.deps import Box, Read, photobox_of, reader_for
from photobox.web.files import serve_file
from photobox.web.intake import receive_body

__all__ = ["ALLOW", "ROUTES", "parse_path"]

ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK"
MAX_XML_BYTES = 1 << 20
MAX_DEPTH = 32
_PAGE = 500
_XML = "application/xml; charset=utf-8"


class DavError(Exception):
    """An HTTP error answer (plain text, or a DAV:error XML body for a precondition)."""

    def __init__(self, status: int, message: str, *, condition: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.condition = condition
        self.headers = headers or {}

    def response(self) -> Response:
        if self.condition:
            return Response(props.error_body(self.condition), status_code=self.status, media_type=_XML,
                            headers=self.headers)
        return Response(self.message + "\n", status_code=self.status, media_type="text/plain; charset=utf-8",
                        headers=self.headers)


def _empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers, media_type="text/plain")


# -- paths ----------------------------------------------------------------------------

def parse_path(path: str) -> tuple[str, ...]:
    """The segments below ``/dav`` of a percent-encoded path; refuses traversal and oddities.

    ``%2F`` inside a name, ``.``/``..`` segments, control characters and backslashes are
    refused (400) rather than guessed at; names are NFC-normalised (macOS sends NFD).
    """
    if not (path == "/dav" or path.startswith("/dav/")):
        raise DavError(400, "the path must be below /dav/")
    out: list[str] = []
    for raw in path[4:].split("/"):
        if raw == "":
            continue
        try:
            name = unquote(raw, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise DavError(400, "the path is not valid UTF-8") from None
        name = unicodedata.normalize("NFC", name)
        if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
            raise DavError(400, f"refused path segment {name!r}: no '.', '..', slashes or control characters")
        if len(name.encode()) > 255:
            raise DavError(400, "a name is longer than 255 bytes")
        out.append(name)
    if len(out) > MAX_DEPTH:
        raise DavError(400, f"the path is deeper than {MAX_DEPTH} folders")
    return tuple(out)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")  # percent-encoded ASCII, or raw UTF-8 from lax clients
    except UnicodeDecodeError:
        raise DavError(400, "the path is not valid UTF-8") from None


def _request_path(request: Request) -> tuple[str, ...]:
    raw = request.scope.get("raw_path")
    text = _utf8(raw) if raw else quote("/dav" + request.scope["path"])
    return parse_path(text.split("?", 1)[0])


def _destination(request: Request) -> tuple[str, ...]:
    """The path a MOVE/COPY goes to, checked like the request's own path. It must name this
    server (another one answers 502, RFC 4918 9.9.4): a path alone does, and so does a URL with
    the host (and port) the client sent in ``Host``, or from a trusted proxy in
    ``X-Forwarded-Host``. The scheme may differ: https at a reverse proxy, http here."""
    value = request.headers.get("destination")
    if not value:
        raise DavError(400, "send the Destination header")
    parts = urlsplit(_utf8(value.encode("latin-1")))
    if (parts.scheme or parts.netloc) and not _this_server(request, parts):
        raise DavError(502, "the Destination is on another server: photobox moves and copies only within itself")
    return parse_path(parts.path)


def _host_port(netloc: str, default: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + netloc)
        return (parts.hostname or "").rstrip("."), parts.port or default
    except ValueError:  # a port that is no number
        return None


def _this_server(request: Request, parts: SplitResult) -> bool:
    if parts.scheme not in ("", "http", "https"):
        return False
    default = 443 if parts.scheme == "https" else 80
    wanted = _host_port(parts.netloc, default)
    if wanted is None:
        raise DavError(400, "the Destination header has a bad port")
    hosts = [request.headers.get("host", "")]
    if proxy.from_trusted_proxy(request.scope, photobox_of(request.app).settings.trusted_proxies):
        hosts += proxy.forwarded_header(request.scope, b"x-forwarded-host")[:1]  # the first: what the client asked
    return any(_host_port(host, default) == wanted for host in hosts if host)


def _in_upload(path: tuple[str, ...]) -> bool:
    """A path that may be created, changed or deleted (strictly below /dav/upload/)."""
    return len(path) >= 2 and path[0] == UPLOAD[0]


def _writable(path: tuple[str, ...]) -> None:
    if not _in_upload(path):
        if path in (ROOT, UPLOAD):
            raise DavError(403, "the WebDAV root and /dav/upload/ itself cannot be changed")
        raise DavError(403, "files and folders go into /dav/upload/")


def _depth(request: Request, default: str) -> str:
    value = (request.headers.get("depth") or default).strip().lower()
    if value not in ("0", "1", "infinity"):
        raise DavError(400, "Depth must be 0, 1 or infinity")
    return value


class ClientGone(Exception):
    """The client disconnected in the middle of its request body."""


async def _stream(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, straight from ASGI ``receive`` (nothing buffered;
    Litestar's ``Request.stream`` needs an HTTP route handler, which a mount is not)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def _content_length(request: Request) -> int | None:
    try:
        return params.content_length(request.headers)
    except ClientException as exc:
        raise DavError(400, str(exc.detail)) from None


async def _small_body(request: Request) -> bytes:
    """An XML request body, at most :data:`MAX_XML_BYTES`."""
    length = _content_length(request)
    if length is not None and length > MAX_XML_BYTES:
        raise DavError(413, "the XML body is too large")
    chunks, total = [], 0
    async for chunk in _stream(request):
        total += len(chunk)
        if total > MAX_XML_BYTES:
            raise DavError(413, "the XML body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


# -- resources ------------------------------------------------------------------------

def _quota(box: Box, conn) -> tuple[int, int]:
    free = shutil.disk_usage(box.path("tmp")).free
    return max(0, free - box.settings.disk_reserve_bytes), store.used_bytes(conn)


def _resource(path: tuple[str, ...], entry: store.Entry | None, quota: tuple[int, int] | None) -> props.Resource:
    if entry is None:  # the root or the upload area
        return props.Resource(props.href_for(path, True), True, path[-1] if path else "dav", mtime=time.time(),
                              quota=quota)
    return props.Resource(props.href_for(path, entry.is_dir), entry.is_dir, entry.name, size=entry.size,
                          mtime=entry.mtime, created=entry.created_at, etag=entry.etag,
                          quota=quota if entry.is_dir else None)


async def _lookup(read: Read, path: tuple[str, ...]) -> tuple[bool, store.Entry | None]:
    """(exists, stored entry). The root and the upload area exist without an entry."""
    if path in (ROOT, UPLOAD):
        return True, None
    if path[0] != UPLOAD[0]:
        return False, None
    entry = await read(store.get, path)
    return entry is not None, entry


# -- methods --------------------------------------------------------------------------

async def _options(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    return _empty(200, headers={"Allow": ALLOW, "DAV": "1, 2", "MS-Author-Via": "DAV", "Accept-Ranges": "bytes"})


async def _propfind(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    # A missing Depth means infinity (RFC 4918), which photobox refuses (403 below) like
    # Apache does; but some phone apps omit it while meaning 1, so a missing one means 1.
    depth = _depth(request, "1")
    if depth == "infinity":
        raise DavError(403, "Depth: infinity is not supported", condition="propfind-finite-depth")
    try:
        req = props.parse_propfind(await _small_body(request))
    except props.BadXML as exc:
        raise DavError(400, str(exc)) from None
    exists, entry = await _lookup(read, path)
    if not exists:
        raise DavError(404, "no such file or folder")
    wants_quota = req.mode == "prop" and any(n.endswith(("}quota-available-bytes", "}quota-used-bytes"))
                                             for n in req.names)
    quota = await read(lambda c: _quota(box, c)) if wants_quota else None
    is_dir = entry is None or entry.is_dir
    if depth == "0" or not is_dir:
        body = props.resource_response(_resource(path, entry, quota), req)
        return Response(props.multistatus_open() + body + props.multistatus_close(), status_code=207,
                        media_type=_XML)

    async def listing() -> AsyncIterator[bytes]:
        yield props.multistatus_open() + props.resource_response(_resource(path, entry, quota), req)
        if path == ROOT:
            yield props.resource_response(_resource(UPLOAD, None, quota), req)
        else:
            after = ""
            while True:
                page = await read(lambda c, a=after: store.children(c, path, after=a, limit=_PAGE))
                if not page:
                    break
                # Rendering a page is CPU work: off the event loop.
                yield await asyncio.to_thread(
                    lambda p=page: b"".join(props.resource_response(_resource((*path, e.name), e, quota), req)
                                            for e in p))
                if len(page) < _PAGE:
                    break
                after = page[-1].name
        yield props.multistatus_close()

    return Stream(listing(), status_code=207, media_type=_XML)


def _prop_time(text: str) -> float | None:
    """A client-set time property; None (refused with 403) when unreadable or out of range."""
    try:
        return parse_time(text, name="the time")
    except ValueError:
        return None


async def _proppatch(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    try:
        changes = props.parse_proppatch(await _small_body(request))
    except props.BadXML as exc:
        raise DavError(400, str(exc)) from None
    exists, entry = await _lookup(read, path)
    if not exists:
        raise DavError(404, "no such file or folder")
    times = [_prop_time(v) if n in props.TIME_PROPS and v is not None else None for n, v in changes]
    allowed = [entry is not None and t is not None for t in times]
    if all(allowed):
        for t in times:
            await box.db.write(store.set_mtime, path, t)
        results = [(n, "200 OK") for n, _ in changes]
    else:  # all or nothing (RFC 4918 §9.2): the refused ones 403, the rest 424
        results = [(n, "424 Failed Dependency" if ok else "403 Forbidden") for (n, _), ok in zip(changes, allowed)]
    return Response(props.propstat_response(props.href_for(path, entry is None or entry.is_dir), results),
                    status_code=207, media_type=_XML)


async def _mkcol(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    if path in (ROOT, UPLOAD):
        raise DavError(405, "this folder exists already", headers={"Allow": ALLOW})
    _writable(path)
    async for chunk in _stream(request):
        if chunk:
            raise DavError(415, "MKCOL takes no body")

    def make(conn) -> None:
        if store.get(conn, path) is not None:
            raise DavError(405, "a file or folder with this name exists already", headers={"Allow": ALLOW})
        if not store.exists_dir(conn, path[:-1]):
            raise DavError(409, "the parent folder does not exist: create it first")
        store.make_collection(conn, path)

    await box.db.write(make)
    return _empty(201)


def _announced_sha1(request: Request) -> bytes | None:
    """A SHA-1 the client sent: ``OC-Checksum: SHA1:<hex>`` (Nextcloud apps) or ``X-Checksum-SHA1``."""
    from photobox.library.api.assets import parse_checksum

    oc = request.headers.get("oc-checksum", "")
    for part in oc.split():
        algo, _, value = part.partition(":")
        if algo.upper() == "SHA1":
            return parse_checksum(value)
    return parse_checksum(request.headers.get("x-checksum-sha1"))


def _check_conditions(request: Request, entry: store.Entry | None) -> None:
    """If-None-Match: * (create only) and If-Match (replace only that version) → 412."""
    none_match = request.headers.get("if-none-match", "").strip()
    if none_match == "*" and entry is not None:
        raise DavError(412, "the file exists already (If-None-Match: *)")
    match = request.headers.get("if-match", "").strip()
    if match:
        tags = {t.strip() for t in match.split(",")}
        if entry is None or ("*" not in tags and entry.etag not in tags):
            raise DavError(412, "the file changed or does not exist (If-Match)")


async def _put(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    _writable(path)
    if request.headers.get("content-range"):
        raise DavError(400, "partial PUT (Content-Range) is not supported: send the whole file")
    try:
        announced = _announced_sha1(request)
    except ClientException as exc:
        raise DavError(400, str(exc.detail)) from None

    def precheck(conn) -> store.Entry | None:
        entry = store.get(conn, path)
        if entry is not None and entry.is_dir:
            raise DavError(405, "a folder has this name", headers={"Allow": ALLOW})
        if not store.exists_dir(conn, path[:-1]):
            raise DavError(409, "the parent folder does not exist: create it first (MKCOL)")
        return entry

    # Fail before the body is read: an app should not send 4 GB to learn the folder is missing.
    entry = await read(precheck)
    _check_conditions(request, entry)
    try:
        client_mtime = parse_time(request.headers.get("x-oc-mtime"), name="X-OC-Mtime")
    except ValueError as exc:
        raise DavError(400, str(exc)) from None
    try:  # the client going away mid-body (ClientGone) keeps nothing and answers nothing
        (received,) = (await receive_body(box, _stream(request), request.headers)).files
    except ClientException as exc:
        raise DavError(400, str(exc.detail)) from None
    except DiskFullError as exc:
        raise DavError(507, str(exc)) from None
    tmp, checksum, size = received.path, received.sha1, received.size
    if announced is not None and checksum != announced:
        tmp.unlink(missing_ok=True)
        raise DavError(400, "the file's SHA-1 does not match the checksum sent: it was damaged on the way; "
                            "nothing was stored")
    asset_id: int | None = None
    made_asset = False
    if size == 0:
        # davfs2, Finder and Windows create an empty file first and PUT the bytes next: list
        # a 0-byte placeholder (no asset) instead of refusing, and let the real PUT replace it.
        tmp.unlink(missing_ok=True)
    else:
        try:
            result = await asyncio.to_thread(ingest_temp_file, box, tmp, checksum, size, original_name=path[-1],
                                             mtime=client_mtime)
        except RejectedFile as exc:
            raise DavError(415, str(exc)) from None
        except DiskFullError as exc:
            raise DavError(507, str(exc)) from None
        asset_id, made_asset = result.asset_id, result.status == "created"
    mtime = client_mtime if client_mtime is not None else time.time()

    def record(conn) -> bool:
        current = store.get(conn, path)
        if current is not None and current.is_dir:
            raise DavError(405, "a folder has this name", headers={"Allow": ALLOW})
        if not store.exists_dir(conn, path[:-1]):
            raise DavError(409, "the parent folder was removed during the upload")
        return store.put_file(conn, path, asset_id=asset_id, made_asset=made_asset, size=size, checksum=checksum,
                              mtime=mtime)

    created = await box.db.write(record)
    headers = {"ETag": f'"{checksum.hex()}"', "OC-ETag": f'"{checksum.hex()}"'}
    if client_mtime is not None:
        headers["X-OC-MTime"] = "accepted"
    return _empty(201 if created else 204, headers=headers)


async def _get(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    exists, entry = await _lookup(read, path)
    if not exists:
        raise DavError(404, "no such file or folder")
    if entry is None or entry.is_dir:
        text = ("This is photobox's WebDAV folder. Connect a WebDAV client (PhotoSync, FolderSync, rclone…) "
                "to /dav/upload/ with an API key as the password; see the README, section Phone backup.\n")
        return Response(text, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
    if entry.asset_id is None and entry.size == 0:
        return Response(b"", media_type="application/octet-stream", headers={"ETag": entry.etag or '""'})
    if entry.asset_id is None:
        raise DavError(404, "this photo was deleted from photobox (its name stays listed so the phone "
                            "does not upload it again)")

    def locate(conn):
        asset = asset_sql.get_asset(conn, entry.asset_id)
        if asset is None:
            return None, None
        return asset, original_path(box, conn, asset.library_id, asset.rel_path)

    asset, file = await read(locate)
    if asset is None or not await asyncio.to_thread(file.is_file):
        raise DavError(404, "the original is not available (deleted, or on an offline library)")
    media_type = asset.mime or mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
    return serve_file(request, file, media_type=media_type, etag=entry.etag or f'"{asset.checksum.hex()}"',
                      cache_control="private, no-cache")


async def _delete(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    _writable(path)

    def forget(conn) -> None:
        entry = store.get(conn, path)
        if entry is None:
            raise DavError(404, "no such file or folder")
        _check_conditions(request, entry)
        store.delete_tree(conn, path)

    await box.db.write(forget)
    return _empty(204)


async def _move_or_copy(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    move = request.method == "MOVE"
    _writable(path)
    dst = _destination(request)
    _writable(dst)
    if dst == path:
        raise DavError(403, "the source and the destination are the same")
    if dst[:len(path)] == path:
        raise DavError(409, "a folder cannot be moved or copied into itself")
    overwrite = request.headers.get("overwrite", "T").strip().upper() != "F"
    deep = _depth(request, "infinity") == "infinity"

    def run(conn) -> bool:
        entry = store.get(conn, path)
        if entry is None:
            raise DavError(404, "no such file or folder")
        if not store.exists_dir(conn, dst[:-1]):
            raise DavError(409, "the destination folder does not exist")
        existing = store.get(conn, dst)
        if existing is not None:
            if not overwrite:
                raise DavError(412, "the destination exists and Overwrite is F")
            store.delete_tree(conn, dst)
        if move:
            store.move_tree(conn, path, dst)
        else:
            store.copy_tree(conn, path, dst, deep=deep)
        return existing is None

    created = await box.db.write(run)
    return _empty(201 if created else 204)


async def _lock(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    try:
        owner = props.lock_owner(await _small_body(request))
    except props.BadXML as exc:
        raise DavError(400, str(exc)) from None
    if path and path[0] != UPLOAD[0]:
        raise DavError(404, "no such file or folder")
    given = request.headers.get("if", "")
    token = given[given.find("<") + 1:given.find(">")] if "<opaquelocktoken:" in given else ""
    token = token or f"opaquelocktoken:{uuid.uuid4()}"
    timeout = "Second-3600"
    depth = "0" if _depth(request, "infinity") == "0" else "infinity"
    return Response(props.lock_body(token, owner, timeout, depth), status_code=200, media_type=_XML,
                    headers={"Lock-Token": f"<{token}>"})


async def _unlock(request: Request, box: Box, read: Read, path: tuple[str, ...]) -> Response:
    if not request.headers.get("lock-token"):
        raise DavError(400, "send the Lock-Token header")
    return _empty(204)


_METHODS = {
    "OPTIONS": _options, "PROPFIND": _propfind, "PROPPATCH": _proppatch, "MKCOL": _mkcol, "PUT": _put,
    "GET": _get, "HEAD": _get, "DELETE": _delete, "MOVE": _move_or_copy, "COPY": _move_or_copy,
    "LOCK": _lock, "UNLOCK": _unlock,
}


@asgi("/dav", is_mount=True, copy_scope=True)
async def dav(scope: Scope, receive: Receive, send: Send) -> None:
    """Every WebDAV method on ``/dav`` and below (see the module docstring)."""
    request: Request = Request(scope, receive)
    box = photobox_of(request.app)
    handler = _METHODS.get(request.method)
    try:
        if handler is None:
            raise DavError(405, f"{request.method} is not a WebDAV method photobox answers", headers={"Allow": ALLOW})
        response = await handler(request, box, reader_for(box), _request_path(request))
    except DavError as exc:
        response = exc.response()
    except QueryTimeout:  # the web's query time limit (photobox.web.deps)
        response = DavError(503, "this took too long; try again").response()
    except params.BodyCutShort as exc:  # the client closed its side mid-body: it still reads this
        response = DavError(400, str(exc.detail)).response()
    except ClientGone:
        return  # nobody to answer
    response.headers.setdefault("DAV", "1, 2")
    if request.method == "HEAD" and not isinstance(response, Stream):
        response.content = b""  # HEAD sends no body (serve_file set the file's Content-Length)
    await response.to_asgi_response(None, request, is_head_response=request.method == "HEAD")(scope, receive, send)


ROUTES = [dav]
