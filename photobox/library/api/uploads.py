"""``/api/uploads``: the resumable upload the browser (and scripts) use for large files.

Create (``POST``, with the name and size), then ``PATCH`` chunks at an ``Upload-Offset``;
after a dropped connection ask (``HEAD``) how far it got. The last chunk hands the file to
the pipeline exactly like a one-shot upload.

Concurrency: a client that retries a chunk while the first attempt is still running (a
proxy timed out, a phone switched networks) sends the same ``PATCH`` twice at once, and a
confused one may send two different bodies at the same offset. So every ``PATCH`` of one
upload runs under that upload's lock, and the database claims each step once: a chunk is
recorded only if ``received`` is still the offset it was written at, and completion deletes
the row only if every byte is there, so exactly one request finishes an upload. The running
SHA-1 covers exactly the bytes written under the lock, in order; a request that finds the
upload already finished gets the answer the finishing request got when its chunk was the
same bytes (a retry), and 409 otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

from litestar import Request, Response, delete, head, patch, post
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody
from msgspec import Struct

from photobox.datadir.storage import DiskFullError
from photobox.inputs import parse_time
from photobox.library import uploads
from photobox.library.api.assets import duplicate_of, ingest_upload, parse_checksum
from photobox.library.ingest import hash_file
from photobox.web.deps import Box, Read
from photobox.web.intake import room_for
from photobox.web.params import Count, parse_int

__all__ = ["MAX_CHUNK_BYTES", "ROUTES"]

MAX_CHUNK_BYTES = 32 * 1024 * 1024


class NewUpload(Struct):
    name: str
    size: Count
    mtime: float | str | None = None
    checksum: str | None = None


class UploadState(Struct):
    id: str
    offset: int
    size: int
    status: str = "open"  # open | created | duplicate
    asset_id: int | None = None
    warning: str | None = None


#: This process's uploads in progress: locks, running SHA-1s, recent answers (bounded; the
#: uploads store owns them with the table).
_PROGRESS = uploads.PROGRESS


def _resumable_dir(box: Box) -> Path:
    folder = box.path("tmp", "resumable")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _client_time(value: Any) -> float | None:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ClientException(str(exc)) from None


async def _upload_row(read: Read, upload_id: str) -> tuple | None:
    return await read(uploads.get_upload, upload_id)


def _gone() -> NotFoundException:
    return NotFoundException("no such upload (it finished, was cancelled, or expired)")


@post("/api/uploads", tags=["uploads"], summary="Start a resumable upload")
async def create_upload(box: Box, read: Read, data: JSONBody[NewUpload]) -> Response:
    checksum = parse_checksum(data.checksum)
    mtime = _client_time(data.mtime)
    existing = await duplicate_of(read, checksum)
    if existing is not None:
        return Response(UploadState("", data.size, data.size, "duplicate", existing.id), status_code=200)
    room_for(box, data.size)
    upload_id = secrets.token_urlsafe(18)
    now = time.time()
    (_resumable_dir(box) / f"{upload_id}.part").touch()
    await box.db.write(lambda c: uploads.create_upload(c, upload_id, name=data.name, size=data.size,
                                                       checksum=checksum, mtime=mtime, now=now))
    return Response(UploadState(upload_id, 0, data.size), status_code=201)


@head("/api/uploads/{upload_id:str}", tags=["uploads"], summary="How many bytes of an upload arrived")
async def upload_offset(read: Read, upload_id: FromPath[str]) -> Response[None]:
    row = await _upload_row(read, upload_id)
    if row is None:
        raise _gone()
    return Response(None, headers={"Upload-Offset": str(row[4]), "Upload-Length": str(row[2]), "Cache-Control": "no-store"})


def _append(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.truncate(offset)  # drop bytes of a chunk that was cut off mid-way
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _conflict(upload_id: str, received: int, size: int, why: str) -> Response:
    return Response({"status_code": 409, "detail": why, "id": upload_id, "offset": received, "size": size},
                    status_code=409, headers={"Upload-Offset": str(received)})


@patch("/api/uploads/{upload_id:str}", tags=["uploads"], summary="Append a chunk at Upload-Offset",
       request_max_body_size=MAX_CHUNK_BYTES + 1)
async def upload_chunk(request: Request, box: Box, read: Read, upload_id: FromPath[str]) -> Response:
    offset = parse_int(request.headers.get("upload-offset"), name="Upload-Offset")
    data = await request.body()
    async with _PROGRESS.lock(upload_id):
        row = await _upload_row(read, upload_id)
        if row is None:
            done = _PROGRESS.finished.get(upload_id)
            if done is None:
                raise _gone()
            if done.last_offset == offset and done.last_chunk_sha1 == hashlib.sha1(data).digest():
                return Response(done.body, status_code=done.status_code)  # a retry of the last chunk
            return _conflict(upload_id, done.size, done.size, "this upload has already finished with other bytes")
        _, name, size, announced, received, mtime = row
        if offset != received:
            return _conflict(upload_id, received, size, f"the upload is at byte {received}, not {offset}: "
                                                        f"send from Upload-Offset")
        if offset + len(data) > size:
            raise ClientException("more bytes than the announced size")
        part = _resumable_dir(box) / f"{upload_id}.part"
        await asyncio.to_thread(room_for, box, len(data), part.parent)
        try:
            await asyncio.to_thread(_append, part, offset, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(exc.errno, "the disk is full: the upload cannot continue") from None
            raise
        _PROGRESS.hashed(upload_id, offset, data)
        received = offset + len(data)

        def claim(conn) -> bool:
            # The chunk counts only if nobody moved the offset meanwhile (another process).
            return uploads.claim_chunk(conn, upload_id, offset=offset, received=received, size=size, now=time.time())

        if not await box.db.write(claim):
            _PROGRESS.hashers.pop(upload_id, None)
            current = await _upload_row(read, upload_id)
            return _conflict(upload_id, current[4] if current else size, size, "another request moved this upload on")
        if received < size:
            return Response(UploadState(upload_id, received, size), headers={"Upload-Offset": str(received)})
        status_code, body = await _complete(box, upload_id, part, name, size, announced, mtime)
        _PROGRESS.finish(upload_id, uploads.Finished(size, offset, hashlib.sha1(data).digest(), status_code, body))
        return Response(body, status_code=status_code)


async def _complete(box: Box, upload_id: str, part: Path, name: str, size: int, announced: bytes | None,
                    mtime: float | None) -> tuple[int, Any]:
    """Hand the finished file to the pipeline; returns (status code, body) to answer with."""
    cached = _PROGRESS.hashers.pop(upload_id, None)
    if cached is not None and cached[0] == size:
        checksum = cached[1].digest()
    else:  # the running hash was lost (a restart between chunks): read the file once
        checksum, _ = await asyncio.to_thread(hash_file, part)
    if announced is not None and checksum != announced:
        part.unlink(missing_ok=True)
        return 400, {"status_code": 400,
                     "detail": "the file's SHA-1 does not match the announced checksum; nothing was stored"}
    try:
        result = await ingest_upload(box, part, checksum, size, name, mtime)
    except HTTPException as exc:
        return exc.status_code, {"status_code": exc.status_code, "detail": exc.detail}
    finally:
        part.unlink(missing_ok=True)
    state = UploadState(upload_id, size, size, result.status, result.asset_id, result.warning)
    return (201 if result.status == "created" else 200), state


@delete("/api/uploads/{upload_id:str}", tags=["uploads"], summary="Cancel a resumable upload", status_code=204)
async def cancel_upload(box: Box, read: Read, upload_id: FromPath[str]) -> None:
    async with _PROGRESS.lock(upload_id):
        if await _upload_row(read, upload_id) is None:
            raise _gone()
        await box.db.write(uploads.delete_upload, upload_id)
        (_resumable_dir(box) / f"{upload_id}.part").unlink(missing_ok=True)
        _PROGRESS.hashers.pop(upload_id, None)


ROUTES = [create_upload, upload_offset, upload_chunk, cancel_upload]
