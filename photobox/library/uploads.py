"""The ``uploads`` table's store: resumable uploads (``/api/uploads``) between their first
and last chunk, this process's running state of them, and the sweep of abandoned ones.

A row holds what the client announced (name, size, SHA-1, file time) and how many bytes
arrived; the bytes are in ``tmp/resumable/<id>.part``. Each chunk is claimed once
(:func:`claim_chunk`): only if ``received`` is still the offset it was written at, and the
last one deletes the row only if every byte is there, so exactly one request finishes an
upload. :data:`PROGRESS` keeps, per upload, a lock, the running SHA-1 and, for retries of a
last chunk, how recently finished uploads ended; it is bounded.

Abandoned uploads must not fill the disk. A browser that starts an upload and never comes
back leaves a row and its ``.part``; a crash can also leave a ``.part`` without a row (between
creating the file and inserting the row, or after the last chunk's row was deleted and before
the file was ingested). :func:`sweep_uploads` removes rows idle for longer than
:data:`UPLOAD_EXPIRY_SECONDS` with their files, and ``.part`` files without a row once they are
older than :data:`ORPHAN_GRACE_SECONDS` (so a file created a moment before its row is never
touched). It runs at start-up and hourly (a periodic task of the scheduler).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import apsw

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["FINISHED_KEPT", "HASHERS_KEPT", "ORPHAN_GRACE_SECONDS", "PROGRESS", "UPLOAD_EXPIRY_SECONDS", "Finished",
           "Progress", "claim_chunk", "create_upload", "delete_upload", "expire_uploads", "get_upload", "sweep_uploads"]

log = logging.getLogger(__name__)

#: A resumable upload nobody touched for this long is given up (a phone resuming a big video
#: over a weekend still makes it).
UPLOAD_EXPIRY_SECONDS = 3 * 86400
#: A ``.part`` without a row is only removed once it is this old.
ORPHAN_GRACE_SECONDS = 60


#: How many finished uploads' answers are kept for retries of their last chunk.
FINISHED_KEPT = 256
#: How many running SHA-1s are kept; beyond that the oldest is dropped (its SHA-1 is then
#: computed from the file when the upload completes).
HASHERS_KEPT = 4096


def get_upload(conn: apsw.Connection, upload_id: str) -> tuple | None:
    """(id, file name, size, announced checksum, bytes received, file time) of an open upload."""
    return conn.execute("SELECT id, file_name, size, checksum, received, mtime FROM uploads WHERE id = ?",
                        (upload_id,)).fetchone()


def create_upload(conn: apsw.Connection, upload_id: str, *, name: str, size: int, checksum: bytes | None,
                  mtime: float | None, now: float) -> None:
    """Record a new upload with nothing received yet (the name is cut to 500 characters)."""
    conn.execute("INSERT INTO uploads (id, file_name, size, checksum, received, mtime, created_at, updated_at) "
                 "VALUES (?, ?, ?, ?, 0, ?, ?, ?)", (upload_id, name[:500], size, checksum, mtime, now, now))


def claim_chunk(conn: apsw.Connection, upload_id: str, *, offset: int, received: int, size: int,
                now: float) -> bool:
    """Count a chunk written at ``offset`` (the upload now has ``received`` bytes); False when
    another request moved the offset meanwhile. The last chunk also deletes the row: its
    completion is claimed by exactly one request."""
    conn.execute("UPDATE uploads SET received = ?, updated_at = ? WHERE id = ? AND received = ?",
                 (received, now, upload_id, offset))
    if conn.changes() != 1:
        return False
    if received == size:
        conn.execute("DELETE FROM uploads WHERE id = ? AND received = ?", (upload_id, size))
    return True


def delete_upload(conn: apsw.Connection, upload_id: str) -> None:
    """Forget an upload (cancelled, or expired)."""
    conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))


@dataclass
class Finished:
    """How an upload ended, for a retry of its last chunk."""

    size: int
    last_offset: int
    last_chunk_sha1: bytes
    status_code: int
    body: Any


class Progress:
    """One process's state of its resumable uploads: a lock per upload, the running SHA-1
    ``(bytes covered, hasher)`` per upload, and the answers of recently finished ones.

    Locks live as long as a request holds them (weak values); hashers are dropped on
    completion, cancel, or when more than :data:`HASHERS_KEPT` uploads are open (the SHA-1 is
    then computed from the file); the finished answers are bounded by :data:`FINISHED_KEPT`.
    """

    def __init__(self) -> None:
        self.locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.finished: OrderedDict[str, Finished] = OrderedDict()

    def lock(self, upload_id: str) -> asyncio.Lock:
        """The lock every request of this upload holds while it reads or moves the upload."""
        lock = self.locks.get(upload_id)
        if lock is None:
            lock = asyncio.Lock()
            self.locks[upload_id] = lock
        return lock

    def hashed(self, upload_id: str, offset: int, data: bytes) -> None:
        """Extend the running SHA-1 with ``data`` written at ``offset`` (under the lock)."""
        state = self.hashers.pop(upload_id, None)
        if state is not None and state[0] == offset:
            state[1].update(data)
            self.hashers[upload_id] = (offset + len(data), state[1])
        elif offset == 0:
            self.hashers[upload_id] = (len(data), hashlib.sha1(data))
        while len(self.hashers) > HASHERS_KEPT:
            self.hashers.popitem(last=False)

    def finish(self, upload_id: str, record: Finished) -> None:
        """Remember how an upload ended (and drop its running SHA-1)."""
        self.hashers.pop(upload_id, None)
        self.finished[upload_id] = record
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)


#: This process's uploads in progress (the web server is one process with one granian worker).
PROGRESS = Progress()


def sweep_uploads(box: Photobox, now: float | None = None) -> dict[str, int]:
    """Remove expired resumable uploads and orphan ``.part`` files; return what was removed."""
    now = box.clock() if now is None else now
    folder = box.path("tmp", "resumable")
    expired = _expired(box, now)
    if expired:
        with box.db.transaction() as conn:
            for upload_id in expired:
                delete_upload(conn, upload_id)
    for upload_id in expired:
        (folder / f"{upload_id}.part").unlink(missing_ok=True)
    orphans = 0
    if folder.is_dir():
        with box.db.reader() as conn:
            live = {r[0] for r in conn.execute("SELECT id FROM uploads")}
        for part in folder.glob("*.part"):
            try:
                old = part.stat().st_mtime < now - ORPHAN_GRACE_SECONDS
            except FileNotFoundError:
                continue
            if part.stem not in live and old:
                part.unlink(missing_ok=True)
                orphans += 1
    if expired or orphans:
        log.info("uploads: removed %d abandoned resumable upload(s) and %d orphan file(s)", len(expired), orphans)
    return {"expired": len(expired), "orphans": orphans}


def _expired(box: Photobox, now: float) -> list[str]:
    with box.db.reader() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM uploads WHERE updated_at < ?",
                                           (now - UPLOAD_EXPIRY_SECONDS,))]


async def expire_uploads(box: Photobox) -> None:
    """Periodic task: :func:`sweep_uploads` in a thread."""
    await asyncio.to_thread(sweep_uploads, box)
