"""Ingest: every way in ends here. A file is hashed, registered once (a duplicate checksum
never becomes a second asset), placed in the library and its metadata read; then the
pipeline's stages after ``metadata`` are queued in the same transaction
(:mod:`photobox.pipeline`; the stages themselves are in :mod:`photobox.library.stages`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from photobox.datadir.storage import PlacementJournal, place_original
from photobox.library import assets
from photobox.library.assets import NOT_TRASHED
from photobox.library.paths import UPLOAD_LIBRARY_ID, original_path

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["IngestResult", "RejectedFile", "extract_metadata", "hash_file", "ingest_temp_file",
           "ingest_library_file"]

log = logging.getLogger(__name__)

# Duplicate check, placement and insert must not interleave between two uploads of the
# same bytes; the database transaction alone cannot cover the file rename.
INGEST_LOCK = threading.Lock()


#: The mark on a photo whose file was cut off but could be shown (``thumbs`` job).
TRUNCATED_NOTE = ("truncated file: it ends before its image data does (cut off, e.g. by an interrupted copy); "
                  "photobox shows what is there, the missing part is grey")


class RejectedFile(Exception):
    """The file is not something photobox can keep (empty, not a photo or video)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # 'created' | 'duplicate'
    asset_id: int
    trashed: bool = False
    warning: str | None = None


def _now() -> float:
    return time.time()


def hash_file(path: Path, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """SHA-1 and size of a file, streamed (never the whole file in memory)."""
    sha1 = hashlib.sha1()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            sha1.update(block)
            size += len(block)
    return sha1.digest(), size


def not_media_reason(md: Any) -> str:
    """The message for a file that is not a photo or video photobox can read."""
    return f"not a photo or video photobox can read: {md.error or 'unknown format'}"


def extract_metadata(path: Path, mtime: float | None, box: Photobox | None = None) -> Any:
    """Read the metadata; in a decoder child process when ``box`` is given (see
    :mod:`photobox.media.sandbox`: video metadata goes through FFmpeg)."""
    if box is not None:
        return box.decoders.call("metadata", path, mtime=mtime)
    from photobox.media.metadata import extract

    return extract(path, mtime=mtime)


def link_live_photo(conn: apsw.Connection, asset_id: int, kind: str, live_id: str | None) -> None:
    """Pair an Apple Live Photo still and its video (same ContentIdentifier) into one asset.

    The video becomes the motion part of the still and leaves the timeline.
    """
    if not live_id:
        return
    other_kind = "video" if kind == "image" else "image"
    row = conn.execute(
        f"SELECT a.id FROM assets a WHERE a.live_photo_id = ? AND a.kind = ? AND a.id != ? AND {NOT_TRASHED} "
        f"ORDER BY abs(a.sort_ts - (SELECT sort_ts FROM assets WHERE id = ?)) LIMIT 1",
        (live_id, other_kind, asset_id, asset_id),
    ).fetchone()
    if row is None:
        return
    still, video = (asset_id, row[0]) if kind == "image" else (row[0], asset_id)
    assets.pair_motion(conn, still, video, now=_now())


def _register(box: Photobox, conn: apsw.Connection, *, library_id: int, rel_path: str, original_name: str,
              checksum: bytes, size: int, mtime: float, md: Any) -> int:
    now = box.clock()
    asset_id = assets.insert_asset(conn, library_id=library_id, rel_path=rel_path, original_name=original_name,
                                   checksum=checksum, size=size, mtime=mtime, kind=md.kind, now=now)
    assets.apply_metadata(conn, asset_id, md, mtime=mtime, now=now)
    link_live_photo(conn, asset_id, md.kind, getattr(md, "live_photo_id", None))
    box.queue_after(conn, "metadata", asset_id, md.kind, md)
    return asset_id


def ingest_temp_file(box: Photobox, tmp_path: Path, checksum: bytes, size: int, *, original_name: str,
                     mtime: float | None = None) -> IngestResult:
    """Take a complete, fsync'd temp file into the upload library (upload, import, WebDAV).

    Runs in a thread. The temp file is consumed: moved into the library, or deleted when
    it is a duplicate or refused.

    Raises:
        RejectedFile: empty, or not a photo or video photobox can read (nothing is kept).
    """
    try:
        with box.db.reader() as conn:
            existing = assets.find_by_checksum(conn, checksum)
        if existing is not None:
            return IngestResult("duplicate", existing.id, trashed=existing.trashed_at is not None)
        if size == 0:
            raise RejectedFile("empty file (0 bytes)")
        from photobox.media.sandbox import DecoderError

        try:
            md = extract_metadata(tmp_path, mtime, box)
        except DecoderError as exc:
            raise RejectedFile(f"photobox could not read this file: {exc}") from exc
        if md.kind is None:
            raise RejectedFile(not_media_reason(md))
        mtime = mtime if mtime is not None else box.clock()
        with INGEST_LOCK, PlacementJournal(box.path("tmp"), box.path("library")) as journal:
            # The journal lets start-up remove the placed file if a crash beats the commit.
            rel = place_original(tmp_path, box.path("library"), original_name, md.taken_at, journal)
            placed = box.path("library", rel)
            try:
                os.utime(placed, (mtime, mtime))  # keep the file's own time, as cp -p would
            except OSError:
                pass
            # Durable: the client may delete its own copy once it has our answer.
            with box.db.transaction(durable=True) as conn:
                existing = assets.find_by_checksum(conn, checksum)
                if existing is not None:  # lost a race with an identical upload
                    placed.unlink(missing_ok=True)
                    return IngestResult("duplicate", existing.id, trashed=existing.trashed_at is not None)
                asset_id = _register(box, conn, library_id=UPLOAD_LIBRARY_ID, rel_path=rel,
                                     original_name=original_name, checksum=checksum, size=size, mtime=mtime, md=md)
                conn.execute(
                    "INSERT INTO library_files (library_id, rel_path, size, mtime, checksum, asset_id, state) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'ok')",
                    (UPLOAD_LIBRARY_ID, rel, size, mtime, checksum, asset_id),
                )
        box.scheduler.notify()
        return IngestResult("created", asset_id, warning=getattr(md, "error", None))
    finally:
        tmp_path.unlink(missing_ok=True)


def _file_row(conn: apsw.Connection, file_id: int) -> tuple | None:
    return conn.execute(
        "SELECT library_id, rel_path, size, mtime, checksum, asset_id, state FROM library_files WHERE id = ?",
        (file_id,),
    ).fetchone()


def ingest_library_file(box: Photobox, file_id: int) -> str:
    """Hash and register one file of an external library in place; return what happened.

    Unchanged duplicates link to the existing asset; a file whose checksum matches an
    offline asset is that asset, moved; a changed file updates its asset.
    """
    with box.db.reader() as conn:
        row = _file_row(conn, file_id)
        if row is None:
            return "gone"
        library_id, rel_path, _, _, _, _, _ = row
        path = original_path(box, conn, library_id, rel_path)
    try:
        st = path.stat()
        checksum, size = hash_file(path)
    except FileNotFoundError:
        with box.db.transaction() as conn:
            conn.execute("UPDATE library_files SET state = 'vanished' WHERE id = ?", (file_id,))
        return "vanished"
    md = extract_metadata(path, st.st_mtime, box)
    now = box.clock()
    with INGEST_LOCK, box.db.transaction() as conn:
        if md.kind is None:
            conn.execute("UPDATE library_files SET state = 'error', error = ?, checksum = ?, size = ?, mtime = ? "
                         "WHERE id = ?", (not_media_reason(md), checksum, size, st.st_mtime, file_id))
            return "error"
        _, _, _, _, _, linked_id, _ = _file_row(conn, file_id)
        linked = assets.get_asset(conn, linked_id) if linked_id else None
        if linked is not None and linked.library_id == library_id and linked.rel_path == rel_path:
            if linked.checksum == checksum:
                conn.execute("UPDATE library_files SET state = 'ok', size = ?, mtime = ?, checksum = ? WHERE id = ?",
                             (size, st.st_mtime, checksum, file_id))
                return "unchanged"
            # Edited in place: same asset, new bytes; derived files are made again.
            assets.replace_file(conn, linked.id, checksum=checksum, size=size, mtime=st.st_mtime, now=now)
            assets.apply_metadata(conn, linked.id, md, mtime=st.st_mtime, now=now)
            box.queue_after(conn, "metadata", linked.id, md.kind, md)
            conn.execute("UPDATE library_files SET state = 'ok', size = ?, mtime = ?, checksum = ? WHERE id = ?",
                         (size, st.st_mtime, checksum, file_id))
            return "changed"
        existing = assets.find_by_checksum(conn, checksum)
        if existing is not None:
            if existing.offline:
                # The same bytes reappeared at a new path: the file moved. Keep the asset
                # (albums, favourites, faces) and point it at the new place.
                assets.move_file(conn, existing.id, library_id, rel_path, mtime=st.st_mtime, now=now)
                state, result = "ok", "moved"
            else:
                state, result = "duplicate", "duplicate"
            conn.execute("UPDATE library_files SET state = ?, asset_id = ?, size = ?, mtime = ?, checksum = ?, "
                         "error = NULL WHERE id = ?", (state, existing.id, size, st.st_mtime, checksum, file_id))
            return result
        asset_id = _register(box, conn, library_id=library_id, rel_path=rel_path, original_name=path.name,
                             checksum=checksum, size=size, mtime=st.st_mtime, md=md)
        conn.execute("UPDATE library_files SET state = 'ok', asset_id = ?, size = ?, mtime = ?, checksum = ?, "
                     "error = NULL WHERE id = ?", (asset_id, size, st.st_mtime, checksum, file_id))
        return "created"
