"""Abandoned resumable uploads (``/api/uploads``) must not fill the disk.

A browser that starts an upload and never comes back leaves a row in ``uploads`` and its
``tmp/resumable/<id>.part``; a crash can also leave a ``.part`` without a row (between creating
the file and inserting the row, or after the last chunk's row was deleted and before the file
was ingested). :func:`sweep_uploads` removes rows idle for longer than
:data:`UPLOAD_EXPIRY_SECONDS` with their files, and ``.part`` files without a row once they are
older than :data:`ORPHAN_GRACE_SECONDS` (so a file created a moment before its row is never
touched). It runs at start-up and hourly (a periodic task of the scheduler).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["ORPHAN_GRACE_SECONDS", "UPLOAD_EXPIRY_SECONDS", "expire_uploads", "sweep_uploads"]

log = logging.getLogger(__name__)

#: A resumable upload nobody touched for this long is given up (a phone resuming a big video
#: over a weekend still makes it).
UPLOAD_EXPIRY_SECONDS = 3 * 86400
#: A ``.part`` without a row is only removed once it is this old.
ORPHAN_GRACE_SECONDS = 60


def sweep_uploads(box: Photobox, now: float | None = None) -> dict[str, int]:
    """Remove expired resumable uploads and orphan ``.part`` files; return what was removed."""
    now = box.clock() if now is None else now
    folder = box.path("tmp", "resumable")
    expired = _expired(box, now)
    if expired:
        with box.db.transaction() as conn:
            for upload_id in expired:
                conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
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
