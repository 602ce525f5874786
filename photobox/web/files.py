"""Serving files: conditional GET (ETag → 304), byte ranges (206) for video seeking, HEAD,
and streamed zip downloads. Files are read in a thread in 256 KiB blocks, never whole."""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

from litestar import Request, Response
from litestar.response import Stream

from photobox.datadir.storage import safe_file_name

__all__ = ["attachment", "file_blocks", "file_range", "in_thread", "serve_file", "stream_zip"]

_BLOCK = 256 * 1024


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range → (start, end inclusive); None if absent, invalid or multi-range."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return None
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start > end or start >= size:
        return (-1, -1)
    return start, min(end, size - 1)


def file_range(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Bytes ``start .. start+length`` of ``path`` in blocks, never whole."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining = length
        while remaining > 0:
            block = f.read(min(_BLOCK, remaining))
            if not block:
                return
            remaining -= len(block)
            yield cast(bytes, block)


async def in_thread(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking block iterator run in a thread, one block at a time (the event loop never
    reads a file); it is closed when the response ends early (a client gone mid-download).

    A client that leaves while a thread is inside ``next(blocks)`` cancels this generator but
    not the thread, and a generator cannot be closed while it runs: the read is shielded and
    the close waits for it to end."""
    loop = asyncio.get_running_loop()
    done = object()
    reading: asyncio.Future[Any] | None = None
    try:
        while True:
            reading = loop.run_in_executor(None, next, blocks, done)
            block = await asyncio.shield(reading)
            reading = None
            if block is done:
                return
            yield cast(bytes, block)
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            if reading is not None and not reading.done():
                reading.add_done_callback(lambda read: (read.cancelled() or read.exception(), close()))
            else:
                close()


def attachment(name: str) -> str:
    """A ``Content-Disposition`` that downloads as ``name`` (any characters, RFC 6266)."""
    return f"attachment; filename*=UTF-8''{quote(name)}"


def serve_file(request: Request, path: Path, *, media_type: str, etag: str | None, cache_control: str,
               download_name: str | None = None,
               blocks: Callable[[Path, int, int], Iterator[bytes]] = file_range) -> Response:
    """A file response honouring If-None-Match, Range, If-Range and HEAD.

    ``blocks(path, start, length)`` gives the bytes of a range, in a thread; by default the
    file's own. A share link passes one that serves the original with its metadata renamed
    (same length, other bytes) and no ``etag``: then nothing is cached or revalidated, and a
    Range is honoured unless an ``If-Range`` asks for a version photobox never named.
    """
    size = os.stat(path).st_size
    headers = {"Cache-Control": cache_control, "Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff"}
    if etag is not None:
        headers["ETag"] = etag
    if download_name is not None:
        headers["Content-Disposition"] = attachment(download_name)
    if etag is not None and etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(None, status_code=304, headers=headers)
    status = 200
    start, length = 0, size
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (if_range is None or if_range == etag):
        parsed = _parse_range(wanted, size)
        if parsed == (-1, -1):
            return Response(None, status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if parsed is not None:
            start, end = parsed
            length = end - start + 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(None, status_code=status, headers=headers, media_type=media_type)
    return Stream(in_thread(blocks(path, start, length)), status_code=status, headers=headers, media_type=media_type)


class _QueueWriter:
    """A write-only file object handing zip bytes to the event loop with backpressure."""

    def __init__(self, q: queue.Queue) -> None:
        self.q = q
        self.pos = 0

    def write(self, data: bytes) -> int:
        if data:
            self.q.put(bytes(data))
            self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass


def file_blocks(path: Path) -> Iterator[bytes]:
    """A file's bytes in blocks, never whole (read lazily, to its end)."""
    yield from file_range(path, 0, sys.maxsize)


def stream_zip(entries: Iterable[tuple[str, Path]], name: str, *,
               read: Callable[[Path], Iterator[bytes]] = file_blocks) -> Stream:
    """A zip of ``(name in zip, file)`` pairs, streamed while it is written (stored, not
    compressed: photos and videos do not shrink). Memory stays at a few blocks.

    ``read`` gives an entry's bytes (share links pass one that strips metadata). A file that
    cannot be read (gone, or refused by ``read`` with OSError/ValueError) is left out whole:
    its first block is read before its entry starts, so no entry is ever written half.
    """
    q: queue.Queue = queue.Queue(maxsize=16)
    done = object()
    cancelled = threading.Event()

    def produce() -> None:
        try:
            with zipfile.ZipFile(cast(IO[bytes], _QueueWriter(q)), "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                used: set[str] = set()
                for arcname, path in entries:
                    if cancelled.is_set():
                        return
                    try:
                        blocks = read(path)
                        first = next(blocks, b"")
                        # Names come from uploads: never let an entry climb out of the folder the
                        # zip is extracted into ("zip slip"), e.g. an upload named "../../x.jpg".
                        info = zipfile.ZipInfo.from_file(path, _unique(safe_file_name(arcname), used))
                    except (OSError, ValueError):
                        continue
                    with zf.open(info, "w", force_zip64=True) as dst:
                        dst.write(first)
                        for block in blocks:
                            if cancelled.is_set():
                                return
                            dst.write(block)
        finally:
            q.put(done)

    async def body() -> AsyncIterator[bytes]:
        thread = threading.Thread(target=produce, name="zip-writer", daemon=True)
        thread.start()
        try:
            while True:
                item = await asyncio.to_thread(q.get)
                if item is done:
                    break
                yield item
        finally:
            cancelled.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)

    return Stream(body(), media_type="application/zip",
                  headers={"Content-Disposition": attachment(name),
                           "Cache-Control": "no-store"})


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate in used:
        candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        n += 1
    used.add(candidate)
    return candidate
