"""Upload API for scripts, phone apps and the browser; asset info and files.

``POST /api/assets`` streams a multipart body to disk (:func:`photobox.web.intake.receive_body`:
Litestar's own form parser would hold the whole file in memory; a Pi cannot hold a 4 GB
video). The SHA-1 a client announces in ``X-Checksum-SHA1`` (hex) or ``X-Immich-Checksum``
(base64) is checked before the body is read (a known file is answered "duplicate" at once)
and again after it is stored (a mismatch is refused and nothing is kept).

The resumable form the browser uses (``/api/uploads``) is :mod:`photobox.library.api.uploads`.
Both keep the ``disk_reserve_mb`` setting free on the disk (:func:`photobox.web.intake.room_for`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path

from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Struct

from photobox.datadir.storage import DiskFullError
from photobox.inputs import parse_time
from photobox.library import assets as asset_sql
from photobox.library.ingest import IngestResult, RejectedFile, ingest_temp_file
from photobox.library.paths import derived_path, original_path
from photobox.web.deps import Box, Read
from photobox.web.files import serve_file
from photobox.web.intake import Multipart, receive_body

MAX_FIELD_BYTES = 4096


class UploadResult(Struct):
    status: str  # created | duplicate
    id: int
    trashed: bool = False
    warning: str | None = None


class CheckRequest(Struct):
    checksums: list[str]


class CheckItem(Struct):
    checksum: str
    status: str  # new | duplicate
    id: int | None = None


class CheckResponse(Struct):
    results: list[CheckItem]


class AssetInfo(Struct):
    id: int
    kind: str
    original_name: str
    checksum: str
    size: int
    mime: str | None
    taken_at: str | None
    tz_offset_min: int | None
    taken_at_source: str | None
    width: int | None
    height: int | None
    display_width: int | None
    display_height: int | None
    duration: float | None
    favorite: bool
    archived: bool
    trashed: bool
    offline: bool
    thumb_version: int
    error: str | None


def parse_checksum(value: str | None) -> bytes | None:
    """A SHA-1 from hex (40 characters) or base64 (Immich's apps); None if absent.

    Raises:
        ClientException: present but not a SHA-1.
    """
    if not value:
        return None
    value = value.strip()
    try:
        raw = bytes.fromhex(value) if len(value) == 40 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 20:
        raise ClientException("the checksum must be a SHA-1, as 40 hex digits or base64")
    return raw


def _announced(request: Request) -> bytes | None:
    return parse_checksum(request.headers.get("x-checksum-sha1") or request.headers.get("x-immich-checksum"))


def _result_response(result: IngestResult) -> Response:
    body = UploadResult(result.status, result.asset_id, result.trashed, result.warning)
    return Response(body, status_code=201 if result.status == "created" else 200)


async def ingest_upload(box: Box, tmp: Path, checksum: bytes, size: int, name: str,
                        mtime: float | None) -> IngestResult:
    """Ingest a complete temp file (consumed) in a thread; refusals become 415 / 507."""
    try:
        return await asyncio.to_thread(ingest_temp_file, box, tmp, checksum, size, original_name=name, mtime=mtime)
    except RejectedFile as exc:
        raise HTTPException(status_code=415, detail=str(exc)) from None
    except DiskFullError as exc:
        raise HTTPException(status_code=507, detail=str(exc)) from None


async def duplicate_of(read: Read, checksum: bytes | None) -> asset_sql.Asset | None:
    """The asset with this SHA-1, if photobox has it."""
    if checksum is None:
        return None
    return await read(asset_sql.find_by_checksum, checksum)


#: The multipart body of ``POST /api/assets``: one file, in ``file`` (``assetData``: Immich's apps).
UPLOAD_FORM = Multipart(("file", "assetData"), text_fields=("filename", "mtime", "fileModifiedAt", "lastModified"),
                        max_field_bytes=MAX_FIELD_BYTES,
                        not_multipart="send multipart/form-data with the file in a field named 'file'")


@post("/api/assets", tags=["assets"], summary="Upload one photo or video (multipart, field 'file')",
      request_max_body_size=None, status_code=201)
async def upload_asset(request: Request, box: Box, read: Read) -> Response:
    announced = _announced(request)
    existing = await duplicate_of(read, announced)
    if existing is not None:
        return _result_response(IngestResult("duplicate", existing.id, existing.trashed_at is not None))
    body = await receive_body(box, request.stream(), request.headers, form=UPLOAD_FORM)
    if not body.files:
        raise ClientException("no file in the upload: send it in a multipart field named 'file'")
    (file,) = body.files
    fields = body.fields
    if announced is not None and file.sha1 != announced:
        body.discard()
        raise ClientException("the file's SHA-1 does not match X-Checksum-SHA1: it was damaged on the way; "
                              "nothing was stored")
    try:
        mtime = parse_time(fields.get("mtime") or fields.get("fileModifiedAt") or fields.get("lastModified"))
    except ValueError as exc:
        body.discard()
        raise ClientException(f"{exc}; nothing was stored") from None
    result = await ingest_upload(box, file.path, file.sha1, file.size, fields.get("filename") or file.name or "upload",
                                 mtime)
    return _result_response(result)


@post("/api/assets/check", tags=["assets"], summary="Which of these SHA-1 checksums does photobox have?",
      status_code=200)
async def check_assets(read: Read, data: JSONBody[CheckRequest]) -> CheckResponse:
    if len(data.checksums) > 5000:
        raise ClientException("at most 5000 checksums per request")
    parsed = [(c, parse_checksum(c)) for c in data.checksums]

    def lookup(conn) -> list[CheckItem]:
        items = []
        for text, raw in parsed:
            found = asset_sql.find_by_checksum(conn, raw)
            items.append(CheckItem(text, "duplicate", found.id) if found else CheckItem(text, "new"))
        return items

    return CheckResponse(await read(lookup))


# -- asset info and files ---------------------------------------------------------------

async def _asset(read: Read, asset_id: int) -> asset_sql.Asset:
    asset = await read(asset_sql.get_asset, asset_id)
    if asset is None:
        raise NotFoundException(f"no asset {asset_id}")
    return asset


@get("/api/assets/{asset_id:int}", tags=["assets"], summary="One asset's metadata")
async def asset_info(read: Read, asset_id: FromPath[int]) -> AssetInfo:
    a = await _asset(read, asset_id)
    return AssetInfo(a.id, a.kind, a.original_name, a.checksum.hex(), a.size, a.mime, a.taken_at, a.tz_offset_min,
                     a.taken_at_source, a.width, a.height, a.display_width, a.display_height, a.duration,
                     bool(a.favorite), bool(a.archived), a.trashed_at is not None, bool(a.offline), a.thumb_version,
                     a.error)


def _derived_response(request: Request, box: Box, asset: asset_sql.Asset, kind: str, media_type: str) -> Response:
    path = derived_path(box, kind, asset.id)
    if not path.exists():
        raise NotFoundException(f"no {kind} yet for asset {asset.id}")
    # Immutable: the page asks for ?v=<thumb_version>, which changes whenever the file does.
    return serve_file(request, path, media_type=media_type, etag=f'"{asset.id}-{kind}-{asset.thumb_version}"',
                      cache_control="private, max-age=31536000, immutable")


@get("/api/assets/{asset_id:int}/thumbnail", tags=["assets"], summary="~250 px WebP thumbnail")
async def asset_thumbnail(request: Request, box: Box, read: Read, asset_id: FromPath[int]) -> Response:
    return _derived_response(request, box, await _asset(read, asset_id), "thumb", "image/webp")


@get("/api/assets/{asset_id:int}/preview", tags=["assets"], summary="~1440 px JPEG preview")
async def asset_preview(request: Request, box: Box, read: Read, asset_id: FromPath[int]) -> Response:
    return _derived_response(request, box, await _asset(read, asset_id), "preview", "image/jpeg")


async def _original(request: Request, box: Box, read: Read, asset: asset_sql.Asset, *,
                    download: bool, media_type: str | None = None) -> Response:
    try:
        path = await read(lambda c: original_path(box, c, asset.library_id, asset.rel_path))
    except (ValueError, KeyError):  # a stored path that leaves its library: refuse, never follow
        raise NotFoundException("the original file's stored path is not valid") from None
    if not await asyncio.to_thread(path.exists):
        raise NotFoundException("the original file is missing (its library folder may be offline)")
    # The checksum names the bytes exactly: a strong ETag that survives renames and restarts.
    return serve_file(request, path, media_type=media_type or asset.mime or "application/octet-stream",
                      etag=f'"{asset.checksum.hex()}"', cache_control="private, no-cache",
                      download_name=asset.original_name if download else None)


@get("/api/assets/{asset_id:int}/original", tags=["assets"], summary="The original file, byte for byte (ETag, Range)")
async def asset_original(request: Request, box: Box, read: Read, asset_id: FromPath[int],
                         download: FromQuery[bool] = False) -> Response:
    return await _original(request, box, read, await _asset(read, asset_id), download=download)


@get("/api/assets/{asset_id:int}/video", tags=["assets"],
     summary="A video as browsers can play it: the rendition when one was made, else the original (Range)")
async def asset_video(request: Request, box: Box, read: Read, asset_id: FromPath[int]) -> Response:
    asset = await _asset(read, asset_id)
    if asset.kind != "video":
        raise NotFoundException("not a video")
    return await _play(request, box, read, asset)


@get("/api/assets/{asset_id:int}/motion", tags=["assets"], summary="The moving part of a Live or Motion Photo")
async def asset_motion(request: Request, box: Box, read: Read, asset_id: FromPath[int]) -> Response:
    asset = await _asset(read, asset_id)
    if asset.motion_state == "embedded":
        path = derived_path(box, "motion", asset.id)
        if path.exists():
            return serve_file(request, path, media_type="video/mp4", etag=f'"{asset.id}-motion"',
                              cache_control="private, max-age=86400")
    elif asset.motion_state == "paired":
        video_id = await read(asset_sql.motion_video, asset.id)
        if video_id:
            return await _play(request, box, read, await _asset(read, video_id))
    raise NotFoundException("this photo has no motion part")


async def _play(request: Request, box: Box, read: Read, video: asset_sql.Asset) -> Response:
    rendition = derived_path(box, "video", video.id)
    if video.rendition == "ready" and rendition.exists():
        return serve_file(request, rendition, media_type="video/mp4", etag=f'"{video.id}-video-{video.thumb_version}"',
                          cache_control="private, max-age=86400")
    # Firefox refuses video/quicktime even for H.264 it can play; the bytes are MP4-compatible.
    return await _original(request, box, read, video, download=False,
                           media_type="video/mp4" if video.mime == "video/quicktime" else None)


ROUTES = [upload_asset, check_assets, asset_info,
          asset_thumbnail, asset_preview, asset_original, asset_video, asset_motion]
