"""Share links: the owner's pages (make, list, revoke, new link) and the public pages ``/s/<token>``.

The public routes are ``opt={"public": True}`` and check, in :func:`_open_share`, in this
order: the per-address rate limit (429), the token (404), revoked or expired (410), the
password cookie. Every file route then asks :func:`store.contains` whether the asset belongs
to *this* share before serving it, so a token for one share never reaches another share's
or an unshared asset by guessing ids. The pages never link into the owner's routes.
``SecurityHeadersMiddleware`` adds ``Referrer-Policy: no-referrer`` and ``X-Robots-Tag``
to everything under ``/s/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Stream
from msgspec import Struct

from photobox import auth
from photobox.datadir.storage import safe_file_name
from photobox.library import albums as album_store
from photobox.library import assets as asset_sql
from photobox.library.paths import derived_path, original_path
from photobox.media.camera import camera_name
from photobox.sharing import redact, store
from photobox.sharing.limits import TokenBucket
from photobox.throttle import GuessThrottle, share_key, try_again
from photobox.web.deps import Box, Read
from photobox.web.files import attachment, file_blocks, in_thread, serve_file, stream_zip
from photobox.web.params import Id
from photobox.web.render import page
from photobox.web.security import client_address, ensure_anon_cookie, is_secure

__all__ = ["ROUTES"]

PUBLIC = {"public": True}
PAGE_SIZE = 120
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
#: Expiry choices of the "share" dialog, in days (0: never).
EXPIRY_DAYS = (0, 1, 7, 30, 365)


# -- limits (per app, made on first use) ------------------------------------------------------

def limits(app) -> tuple[TokenBucket, GuessThrottle]:
    """(requests bucket, wrong-password throttle) of this app; tests may replace the bucket.
    The throttle is the app's one password budget (photobox.throttle), keyed per link here."""
    state = app.state
    if "share_bucket" not in state:
        state.share_bucket = TokenBucket()
    return state.share_bucket, state.password_throttle


def _addr(request: Request) -> str:
    return client_address(request.scope)


def _too_many(wait: float, what: str) -> HTTPException:
    return HTTPException(status_code=429, detail=f"Too many {what}; try again in {int(wait) + 1} seconds.",
                         headers={"Retry-After": str(int(wait) + 1)})


def _unlock_value(secret_key: bytes, share: store.Share) -> str:
    """The password cookie: bound to the share, its password and its current token."""
    msg = f"share:{share.id}:{share.password_hash}:{share.token_at!r}".encode()
    return hmac.new(secret_key, msg, hashlib.sha256).hexdigest()


def _cookie_name(share: store.Share) -> str:
    return f"pb_share_{share.id}"


def _unlocked(request: Request, box: Box, share: store.Share) -> bool:
    if not share.has_password:
        return True
    given = request.cookies.get(_cookie_name(share), "")
    expected = _unlock_value(box.secret_key, share)
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


async def _open_share(request: Request, box: Box, read: Read, token: str, *,
                      cost: float = 1.0) -> store.Share:
    """Rate limit, then the live share for ``token`` (404 unknown, 410 revoked or expired)."""
    bucket, _ = limits(request.app)
    wait = bucket.take(_addr(request), cost)
    if wait:
        raise _too_many(wait, "requests")
    share = await read(store.find_share, token)
    if share is None:
        raise NotFoundException("This link does not exist. Check that it was copied completely.")
    if not share.live(box.clock()):
        raise HTTPException(status_code=410, detail="This link has expired or was turned off by its owner.")
    return share


async def _open_unlocked(request: Request, box: Box, read: Read, token: str, *,
                         cost: float = 1.0) -> store.Share:
    share = await _open_share(request, box, read, token, cost=cost)
    if not _unlocked(request, box, share):
        raise PermissionDeniedException("This link needs its password: open the link and enter it.")
    return share


async def _member(read: Read, share: store.Share, asset_id: int) -> asset_sql.Asset:
    """The asset if the share shows it; 404 otherwise (the same answer as for no asset at all)."""
    def load(conn) -> asset_sql.Asset | None:
        if not store.contains(conn, share, asset_id):
            return None
        return asset_sql.get_asset(conn, asset_id)

    asset = await read(load)
    if asset is None:
        raise NotFoundException("This photo is not part of the link.")
    return asset


def _public_page(request: Request, name: str, **context: Any) -> Response:
    response = page(request, name, **context)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def can_download(share: store.Share, asset: asset_sql.Asset) -> bool:
    """Originals are offered only when the link allows it, and, with metadata hidden, only in
    the formats :mod:`photobox.sharing.redact` can clean."""
    return share.allow_download and (share.show_metadata or redact.can_clean(asset.mime))


def _public_name(share: store.Share, asset: asset_sql.Asset) -> str:
    """The original's name when metadata is shown, else a neutral one (names like
    ``Paris_hotel.jpg`` are metadata too)."""
    if share.show_metadata:
        return asset.original_name
    ext = asset.original_name.rpartition(".")[2].lower() if "." in asset.original_name else "bin"
    return f"photo-{asset.id}.{ext[:8]}"


# -- public pages -----------------------------------------------------------------------------

class UnlockForm(Struct):
    password: str = ""
    csrf_token: str = ""


@get("/s/{token:str}", opt=PUBLIC, include_in_schema=False)
async def public_share(request: HTMXRequest, box: Box, read: Read, token: FromPath[str],
                       before: FromQuery[str | None] = None) -> Response:
    """The shared grid (or the password form), newest first, keyset-paginated."""
    share = await _open_share(request, box, read, token)
    if not _unlocked(request, box, share):
        ensure_anon_cookie(request)
        return _public_page(request, "share_password.html", share=share, token=token, error=None)
    tiles = await read(lambda c: store.page(c, share, before=before, limit=PAGE_SIZE))
    more = tiles[-1].cursor if len(tiles) == PAGE_SIZE else None
    if request.htmx:
        return _public_page(request, "_share_tiles.html", share=share, token=token, tiles=tiles, more=more)
    if before is None:
        await box.db.write(store.record_view, share.id)
    total = await read(store.count, share)
    return _public_page(request, "share_page.html", share=share, token=token, tiles=tiles, more=more, total=total)


@post("/s/{token:str}/unlock", opt=PUBLIC, include_in_schema=False)
async def public_unlock(request: Request, box: Box, read: Read, token: FromPath[str],
                        data: Annotated[UnlockForm, Form]) -> Response:
    """The password form: a right password sets a cookie for this link only."""
    share = await _open_share(request, box, read, token)
    _, guesses = limits(request.app)
    # Per link, from every address together: a short share password must not get more guesses
    # from more addresses, and a right password on another link must not reset this one's count.
    key = share_key(share.id)
    wait = guesses.retry_after(key)
    if wait:
        response = _public_page(request, "share_password.html", share=share, token=token,
                                error="Too many wrong passwords. " + try_again(wait))
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response
    if not share.has_password:
        return Redirect(f"/s/{token}", status_code=303)

    if not await asyncio.to_thread(auth.verify_password, share.password_hash, data.password):
        guesses.failed(key)
        response = _public_page(request, "share_password.html", share=share, token=token,
                                error="That is not the password of this link.")
        response.status_code = 401
        return response
    guesses.succeeded(key)
    response = Redirect(f"/s/{token}", status_code=303)
    response.set_cookie(_cookie_name(share), _unlock_value(box.secret_key, share), path=f"/s/{token}",
                        max_age=7 * 86400, httponly=True, samesite="lax", secure=is_secure(request))
    return response


@get("/s/{token:str}/p/{asset_id:int}", opt=PUBLIC, include_in_schema=False)
async def public_viewer(request: Request, box: Box, read: Read, token: FromPath[str],
                        asset_id: FromPath[int]) -> Response:
    """One shared photo or video large, with newer/older arrows within the share."""
    share = await _open_unlocked(request, box, read, token)
    asset = await _member(read, share, asset_id)
    newer, older = await read(store.neighbors, share, asset_id)
    facts: list[tuple[str, str]] = []
    if share.show_metadata:
        row = await read(store.camera_and_position, asset_id)
        if asset.taken_at:
            facts.append(("Taken", asset.taken_at.replace("T", " ")[:16]))
        camera = camera_name(row[0], row[1])
        if camera:
            facts.append(("Camera", camera))
        if row[2] is not None and row[3] is not None:
            facts.append(("Location", f"{row[2]:.5f}, {row[3]:.5f}"))
        facts.append(("File", asset.original_name))
    return _public_page(request, "share_viewer.html", share=share, token=token, asset=asset, newer=newer,
                        older=older, facts=facts, downloadable=can_download(share, asset))


def _derived(request: Request, box: Box, asset: asset_sql.Asset, kind: str, media_type: str) -> Response:
    path = derived_path(box, kind, asset.id)
    if not path.exists():
        raise NotFoundException("not ready yet")
    # Thumbnails and previews are encoded by photobox without EXIF: no metadata to hide.
    # "no-cache" (revalidate with the ETag, a cheap 304): a turned-off link stops at once,
    # even for a browser that has the files cached.
    return serve_file(request, path, media_type=media_type, etag=f'"{asset.id}-{kind}-{asset.thumb_version}"',
                      cache_control="private, no-cache")


@get("/s/{token:str}/a/{asset_id:int}/thumbnail", opt=PUBLIC, include_in_schema=False)
async def public_thumbnail(request: Request, box: Box, read: Read, token: FromPath[str],
                           asset_id: FromPath[int]) -> Response:
    share = await _open_unlocked(request, box, read, token)
    return _derived(request, box, await _member(read, share, asset_id), "thumb", "image/webp")


@get("/s/{token:str}/a/{asset_id:int}/preview", opt=PUBLIC, include_in_schema=False)
async def public_preview(request: Request, box: Box, read: Read, token: FromPath[str],
                         asset_id: FromPath[int]) -> Response:
    share = await _open_unlocked(request, box, read, token)
    return _derived(request, box, await _member(read, share, asset_id), "preview", "image/jpeg")


async def _original_path(box: Box, read: Read, asset: asset_sql.Asset) -> Path:
    try:
        path = await read(lambda c: original_path(box, c, asset.library_id, asset.rel_path))
    except (ValueError, KeyError):  # a stored path that leaves its library: refuse, never follow
        raise NotFoundException("The original file is not available.") from None
    if not await asyncio.to_thread(path.exists):
        raise NotFoundException("The original file is not available right now.")
    return path


async def _serve_original(request: Request, box: Box, read: Read, share: store.Share,
                          asset: asset_sql.Asset, *, download: bool, media_type: str | None = None) -> Response:
    path = await _original_path(box, read, asset)
    media_type = media_type or asset.mime or "application/octet-stream"
    name = _public_name(share, asset) if download else None
    if share.show_metadata:
        return serve_file(request, path, media_type=media_type, etag=f'"{asset.checksum.hex()}"',
                          cache_control="private, no-cache", download_name=name)
    if asset.mime in redact.JPEG:
        # A cleaned JPEG is shorter than its file, by an amount known only once it is written:
        # streamed whole, without ranges.
        headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
        if name:
            headers["Content-Disposition"] = attachment(name)
        gen = await asyncio.to_thread(redact.jpeg_clean, path)
        return Stream(in_thread(gen), media_type=media_type, headers=headers)
    if asset.mime in redact.MP4 or asset.mime in redact.HEIF:
        finder = redact.mp4_patches if asset.mime in redact.MP4 else redact.heif_patches
        try:
            patches = await asyncio.to_thread(finder, path)
        except ValueError:
            raise PermissionDeniedException("The owner shares this link without photo metadata, and this file's "
                                            "metadata cannot be removed safely; the preview is available.") from None
        # Metadata boxes renamed in place: the same length, so ranges (video seeking) work.
        return serve_file(request, path, media_type=media_type, etag=None, cache_control="private, no-store",
                          download_name=name, blocks=lambda p, start, length: redact.read_patched(p, start, length,
                                                                                                 patches))
    raise PermissionDeniedException("The owner shares this link without photo metadata, and the original of this "
                                    "file type cannot be cleaned of it; the preview is available.")


@get("/s/{token:str}/a/{asset_id:int}/original", opt=PUBLIC, include_in_schema=False)
async def public_original(request: Request, box: Box, read: Read, token: FromPath[str],
                          asset_id: FromPath[int]) -> Response:
    """The original as a download, when the link allows it (metadata removed unless shown)."""
    share = await _open_unlocked(request, box, read, token)
    asset = await _member(read, share, asset_id)
    if not share.allow_download:
        raise PermissionDeniedException("The owner does not allow downloads from this link.")
    return await _serve_original(request, box, read, share, asset, download=True)


@get("/s/{token:str}/a/{asset_id:int}/video", opt=PUBLIC, include_in_schema=False)
async def public_video(request: Request, box: Box, read: Read, token: FromPath[str],
                       asset_id: FromPath[int]) -> Response:
    """A shared video as browsers play it: the rendition if one was made, else the original
    (with its metadata boxes renamed unless metadata is shown). Playing is not downloading."""
    share = await _open_unlocked(request, box, read, token, cost=0.1)  # seeking makes many small requests
    asset = await _member(read, share, asset_id)
    if asset.kind != "video":
        raise NotFoundException("not a video")
    rendition = derived_path(box, "video", asset.id)
    if asset.rendition == "ready" and rendition.exists():
        # Renditions are encoded by photobox, which copies no metadata into them.
        return serve_file(request, rendition, media_type="video/mp4", etag=f'"{asset.id}-video-{asset.thumb_version}"',
                          cache_control="private, no-cache")
    return await _serve_original(request, box, read, share, asset, download=False,
                                 media_type="video/mp4" if asset.mime == "video/quicktime" else None)


@get("/s/{token:str}/download", opt=PUBLIC, include_in_schema=False, status_code=200)
async def public_download(request: Request, box: Box, read: Read, token: FromPath[str]) -> Response:
    """Everything the link shows as one zip, streamed (cleaned of metadata unless shown)."""
    share = await _open_unlocked(request, box, read, token, cost=20)
    if not share.allow_download:
        raise PermissionDeniedException("The owner does not allow downloads from this link.")

    def entries(conn) -> list[tuple[str, Path, str]]:
        out = []
        for asset_id in store.asset_ids(conn, share):
            asset = asset_sql.get_asset(conn, asset_id)
            if asset is None or not can_download(share, asset):
                continue
            mode = ("raw" if share.show_metadata else "jpeg" if asset.mime in redact.JPEG
                    else "heif" if asset.mime in redact.HEIF else "mp4")
            try:
                path = original_path(box, conn, asset.library_id, asset.rel_path)
            except (ValueError, KeyError):
                continue
            out.append((safe_file_name(_public_name(share, asset)), path, mode))
        return out

    files = await read(entries)
    if not files:
        raise NotFoundException("Nothing in this link can be downloaded.")
    title = "".join(ch for ch in share.title if ch.isalnum() or ch in " -_")[:60].strip() or "photos"
    return _zip(files, f"{title}.zip")


def _blocks(path: Path, mode: str) -> Iterator[bytes]:
    if mode == "jpeg":
        yield from redact.jpeg_clean(path)
    elif mode in ("mp4", "heif"):
        finder = redact.mp4_patches if mode == "mp4" else redact.heif_patches
        yield from redact.read_patched(path, 0, path.stat().st_size, finder(path))
    else:
        yield from file_blocks(path)


def _zip(entries: list[tuple[str, Path, str]], name: str) -> Stream:
    """:func:`photobox.web.files.stream_zip` with each entry's bytes from :func:`_blocks`."""
    modes = {path: mode for _, path, mode in entries}
    return stream_zip([(arcname, path) for arcname, path, _ in entries], name,
                      read=lambda path: _blocks(path, modes[path]))


# -- the owner's pages ------------------------------------------------------------------------

class ShareForm(Struct):
    album_id: Id | None = None
    ids: list[Id] | Id = []
    title: str = ""
    expires_days: int = 0
    password: str = ""
    allow_download: str = ""
    show_metadata: str = ""
    csrf_token: str = ""


def _link(request: Request, token: str) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/s/{token}"


async def _render_list(request: Request, box: Box, read: Read, *, new_link: str | None = None,
                       new_id: int | None = None, error: str | None = None, status_code: int = 200) -> Response:
    shares = await read(store.list_shares)
    albums = dict(await read(album_store.album_names))
    return page(request, "shares.html", shares=shares, albums=albums, new_link=new_link, new_id=new_id,
                error=error, now=box.clock(), status_code=status_code)


#: A new link's token, kept briefly for the page the creating POST redirects to (a reload
#: of that page must not make a second link), then forgotten: links are stored hashed.
_JUST_MADE: dict[int, tuple[float, str]] = {}
_JUST_MADE_SECONDS = 300


def _show_once(box: Box, share_id: int, token: str) -> Redirect:
    now = box.clock()
    for sid in [k for k, (t, _) in _JUST_MADE.items() if t < now]:
        del _JUST_MADE[sid]
    _JUST_MADE[share_id] = (now + _JUST_MADE_SECONDS, token)
    return Redirect(f"/shares?new={share_id}", status_code=303)


@get("/shares", include_in_schema=False)
async def share_list(request: Request, box: Box, read: Read,
                     new: FromQuery[int | None] = None) -> Response:
    made = _JUST_MADE.pop(new, None) if new is not None else None
    if made is not None and made[0] >= box.clock():
        return await _render_list(request, box, read, new_link=_link(request, made[1]), new_id=new)
    return await _render_list(request, box, read)


@post("/shares", include_in_schema=False)
async def share_create(request: Request, box: Box, read: Read,
                       data: Annotated[ShareForm, Form]) -> Response:
    """Make a link to an album or to the selected photos; the link is shown once."""
    ids = [data.ids] if isinstance(data.ids, int) else list(data.ids)
    if data.expires_days < 0 or data.expires_days > 3650:
        raise ClientException("expiry must be between 0 (never) and 3650 days")
    # Used as typed (the visitor types it the same way); only all-blank means "no password".
    password_hash = await asyncio.to_thread(auth.hash_password, data.password) if data.password.strip() else None
    now = box.clock()
    try:
        share, token = await box.db.write(lambda c: store.create_share(
            c, album_id=data.album_id, asset_ids=ids, title=data.title, password_hash=password_hash,
            allow_download=bool(data.allow_download), show_metadata=bool(data.show_metadata),
            expires_at=now + data.expires_days * 86400 if data.expires_days else None, now=now))
    except ValueError as exc:
        return await _render_list(request, box, read, error=str(exc), status_code=400)
    return _show_once(box, share.id, token)


class SelectionForm(Struct):
    ids: list[Id] | Id = []
    csrf_token: str = ""


@post("/shares/new", include_in_schema=False, status_code=200)
async def share_new(request: Request, data: Annotated[SelectionForm, Form]) -> Response:
    """The selection bar's "Share": the options of a link to the selected photos."""
    ids = [data.ids] if isinstance(data.ids, int) else list(data.ids)
    if not ids:
        raise ClientException("nothing selected")
    if len(ids) > store.MAX_SELECTION:
        raise ClientException(f"a link can share at most {store.MAX_SELECTION} items; use an album for more")
    return page(request, "share_new.html", ids=ids, share_title="")


@post("/shares/{share_id:int}/revoke", include_in_schema=False)
async def share_revoke(box: Box, share_id: FromPath[int]) -> Response:
    await box.db.write(store.revoke_share, share_id)
    return Redirect("/shares", status_code=303)


@post("/shares/{share_id:int}/new-link", include_in_schema=False)
async def share_new_link(box: Box, share_id: FromPath[int]) -> Response:
    """A new token for a live link (the old link stops working): links are stored hashed, so
    this is how to see a link again."""
    token = await box.db.write(store.new_token, share_id)
    if token is None:
        raise NotFoundException("no such live link")
    return _show_once(box, share_id, token)


ROUTES = [public_share, public_unlock, public_viewer, public_thumbnail, public_preview, public_original, public_video,
          public_download, share_list, share_new, share_create, share_revoke, share_new_link]
