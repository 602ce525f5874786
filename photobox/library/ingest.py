"""The ingest pipeline: every way in ends here, as named stages registered as job kinds.

Stages per asset, in order of priority (the timeline fills before the slow work runs):
``ingest.file`` (hash + register, external libraries) → ``metadata`` → ``thumbs`` →
``motion`` (embedded Motion Photo video) → ``video`` (web rendition when needed). Later
features (clip, faces, places, dupes) add themselves to :data:`STAGES` the same way.

Every stage is idempotent (the scheduler delivers at least once): derived files are written
to a temp name and renamed, rows are updated in place, and a duplicate checksum never
becomes a second asset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from photobox.jobs import REGISTRY, Job, PermanentError
from photobox.jobs import store as job_store
from photobox.library import assets
from photobox.library.paths import UPLOAD_LIBRARY_ID, derived_path, library_root, original_path
from photobox.library.storage import PlacementJournal, place_original

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["IngestResult", "RejectedFile", "STAGES", "enqueue_stages", "hash_file", "ingest_temp_file",
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


@dataclass(frozen=True, slots=True)
class Stage:
    kind: str
    wanted: Callable[[str, Any], bool]  # (asset kind, metadata) -> run this stage?


#: Stages queued after metadata, in order. Features append to this list.
STAGES: list[Stage] = [
    Stage("thumbs", lambda kind, md: True),
    Stage("motion", lambda kind, md: kind == "image" and bool(getattr(md, "motion_video_length", None))),
    Stage("video", lambda kind, md: kind == "video"),
]


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


def _extract(path: Path, mtime: float | None, box: Photobox | None = None) -> Any:
    """Read the metadata; in a decoder child process when ``box`` is given (see
    :mod:`photobox.media.sandbox`: video metadata goes through FFmpeg)."""
    if box is not None:
        return box.decoders.call("metadata", path, mtime=mtime)
    from photobox.media.metadata import extract

    return extract(path, mtime=mtime)


def enqueue_stages(box: Photobox, conn: apsw.Connection, asset_id: int, kind: str, md: Any) -> None:
    """Queue the stages after metadata for one asset (inside the caller's transaction)."""
    now = box.clock()
    for stage in STAGES:
        if stage.wanted(kind, md) and stage.kind in box.scheduler.registry:
            spec = box.scheduler.registry.get(stage.kind)
            job_store.enqueue(conn, stage.kind, str(asset_id), now=now, priority=spec.priority,
                              max_attempts=spec.max_attempts or box.settings.job_max_attempts, force=True)


def link_live_photo(conn: apsw.Connection, asset_id: int, kind: str, live_id: str | None) -> None:
    """Pair an Apple Live Photo still and its video (same ContentIdentifier) into one asset.

    The video becomes the motion part of the still and leaves the timeline.
    """
    if not live_id:
        return
    other_kind = "video" if kind == "image" else "image"
    row = conn.execute(
        "SELECT id FROM assets WHERE live_photo_id = ? AND kind = ? AND id != ? AND trashed_at IS NULL "
        "ORDER BY abs(sort_ts - (SELECT sort_ts FROM assets WHERE id = ?)) LIMIT 1",
        (live_id, other_kind, asset_id, asset_id),
    ).fetchone()
    if row is None:
        return
    still, video = (asset_id, row[0]) if kind == "image" else (row[0], asset_id)
    conn.execute("UPDATE assets SET motion_of = ?, updated_at = ? WHERE id = ?", (still, _now(), video))
    conn.execute("UPDATE assets SET motion_state = 'paired', updated_at = ? WHERE id = ?", (_now(), still))


def _register(box: Photobox, conn: apsw.Connection, *, library_id: int, rel_path: str, original_name: str,
              checksum: bytes, size: int, mtime: float, md: Any) -> int:
    now = box.clock()
    asset_id = assets.insert_asset(conn, library_id=library_id, rel_path=rel_path, original_name=original_name,
                                   checksum=checksum, size=size, mtime=mtime, kind=md.kind, now=now)
    assets.apply_metadata(conn, asset_id, md, mtime=mtime, now=now)
    link_live_photo(conn, asset_id, md.kind, getattr(md, "live_photo_id", None))
    enqueue_stages(box, conn, asset_id, md.kind, md)
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
            md = _extract(tmp_path, mtime, box)
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
    md = _extract(path, st.st_mtime, box)
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
            conn.execute("UPDATE assets SET checksum = ?, size = ?, mtime = ?, offline = 0, updated_at = ? WHERE id = ?",
                         (checksum, size, st.st_mtime, now, linked.id))
            assets.apply_metadata(conn, linked.id, md, mtime=st.st_mtime, now=now)
            enqueue_stages(box, conn, linked.id, md.kind, md)
            conn.execute("UPDATE library_files SET state = 'ok', size = ?, mtime = ?, checksum = ? WHERE id = ?",
                         (size, st.st_mtime, checksum, file_id))
            return "changed"
        existing = assets.find_by_checksum(conn, checksum)
        if existing is not None:
            if existing.offline:
                # The same bytes reappeared at a new path: the file moved. Keep the asset
                # (albums, favourites, faces) and point it at the new place.
                conn.execute("UPDATE assets SET library_id = ?, rel_path = ?, offline = 0, mtime = ?, updated_at = ? "
                             "WHERE id = ?", (library_id, rel_path, st.st_mtime, now, existing.id))
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


# -- job handlers ----------------------------------------------------------------------

def _load(job: Job) -> tuple[Photobox, assets.Asset, Path]:
    box: Photobox = job.context
    with box.db.reader() as conn:
        asset = assets.get_asset(conn, int(job.target))
        if asset is None:
            raise PermanentError(f"asset {job.target} no longer exists")
        path = original_path(box, conn, asset.library_id, asset.rel_path)
    if not path.exists():
        raise PermanentError(f"the original is missing: {path}")
    return box, asset, path


def _in_words(exc: BaseException) -> str:
    """A media failure as a sentence: a decoder's own message (it says what was expected and
    found), or for anything else the exception's type too, since its text alone may be bare."""
    from photobox.media.decode import DecodeError
    from photobox.media.sandbox import DecoderError

    if isinstance(exc, (DecodeError, DecoderError)):
        return str(exc)
    return f"an unexpected error in photobox ({type(exc).__name__}: {exc})"


def _record_error(box: Photobox, asset_id: int, text: str) -> None:
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET error = ?, updated_at = ? WHERE id = ?", (text, box.clock(), asset_id))


@REGISTRY.register("ingest.file", concurrency=None, priority=50)
def ingest_file_job(job: Job) -> None:
    ingest_library_file(job.context, int(job.target))


@REGISTRY.register("metadata", concurrency=None, priority=40)
def metadata_job(job: Job) -> None:
    """Read the metadata again (e.g. after an extractor upgrade) and redo the later stages."""
    box, asset, path = _load(job)
    md = _extract(path, asset.mtime, box)
    if md.kind is None:
        raise PermanentError(f"{asset.original_name}: {not_media_reason(md)}")
    with box.db.transaction() as conn:
        assets.apply_metadata(conn, asset.id, md, mtime=asset.mtime, now=box.clock())
        link_live_photo(conn, asset.id, asset.kind, getattr(md, "live_photo_id", None))
        enqueue_stages(box, conn, asset.id, asset.kind, md)


@REGISTRY.register("thumbs", concurrency=None, priority=30)
def thumbs_job(job: Job) -> None:
    """Thumbnail, preview and placeholder; a file that cannot be decoded fails for good."""
    from photobox.media.decode import DecodeError

    box, asset, path = _load(job)
    thumb, preview = derived_path(box, "thumb", asset.id), derived_path(box, "preview", asset.id)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    preview.parent.mkdir(parents=True, exist_ok=True)
    try:
        # In a decoder child: a crash there fails this job (retried as usual), not the server.
        # kill_when: a shutdown does not wait for a slow decode (the job is handed back).
        result = box.decoders.call("thumbs", path, thumb, preview, kind=asset.kind, kill_when=job.should_stop)
    except (DecodeError, ValueError) as exc:
        _record_error(box, asset.id, f"cannot show this file: {_in_words(exc)}")
        raise PermanentError(f"{asset.original_name}: cannot make a thumbnail: {_in_words(exc)}") from exc
    with box.db.transaction() as conn:
        if "clip" in box.scheduler.registry and box.models.clip() is not None:
            # A new preview: let search embed it (one queued job serves every asset).
            job_store.enqueue(conn, "clip", "", now=box.clock(), priority=10, force=True)
        if asset.kind == "image":
            from photobox.people.faces_job import queue_after_thumbs

            queue_after_thumbs(box, conn, asset.id)
        conn.execute(
            "UPDATE assets SET placeholder = ?, thumb_version = thumb_version + 1, "
            "display_width = coalesce(display_width, ?), display_height = coalesce(display_height, ?), "
            # a retry that worked: the failure recorded by an earlier attempt is no longer true
            "error = CASE WHEN error LIKE 'cannot show this file:%' THEN NULL ELSE error END, "
            "updated_at = ? WHERE id = ?",
            (getattr(result, "placeholder", None), getattr(result, "source_width", None),
             getattr(result, "source_height", None), box.clock(), asset.id),
        )
        if getattr(result, "truncated", False):
            # Shown as far as it goes, and said: the viewer and the API show the asset's error.
            conn.execute("UPDATE assets SET error = ? WHERE id = ?", (TRUNCATED_NOTE, asset.id))


@REGISTRY.register("motion", concurrency=1, priority=20)
def motion_job(job: Job) -> None:
    """Extract the video inside a Motion Photo as the asset's motion part (made playable:
    Samsung phones embed HEVC, which most browsers cannot play)."""
    from photobox.media import video
    from photobox.media.motion import extract_motion_video

    box, asset, path = _load(job)
    dest = derived_path(box, "motion", asset.id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = dest.with_name(f"{asset.id}.embedded.mp4")
    found = extract_motion_video(path, raw)
    if found:
        try:
            playable = video.browser_playable(box.decoders.call("video.probe", raw))
        except Exception:
            playable = True  # let the browser try; the still is shown either way
        if playable:
            os.replace(raw, dest)
        else:
            try:
                box.decoders.call("video.transcode", raw, dest, max_height=720,
                                  threads=min(2, box.settings.cpu_workers), limit=None, kill_when=job.should_stop)
            except video.VideoError as exc:  # the same bytes fail the same way: say so once
                raise PermanentError(f"{asset.original_name}: cannot convert the video inside this Motion Photo "
                                     f"for the browser: {_in_words(exc)}") from exc
            finally:
                raw.unlink(missing_ok=True)
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET motion_state = ?, updated_at = ? WHERE id = ?",
                     ("embedded" if found else None, box.clock(), asset.id))


@REGISTRY.register("video", concurrency=1, priority=5)
def video_job(job: Job) -> None:
    """Make a web-playable rendition only when the original will not play in a browser."""
    from photobox.media import video

    box, asset, path = _load(job)
    try:
        info = box.decoders.call("video.probe", path)
    except Exception as exc:
        _record_error(box, asset.id, f"cannot read this video: {_in_words(exc)}")
        raise PermanentError(f"{asset.original_name}: cannot read this video: {_in_words(exc)}") from exc
    if video.browser_playable(info):
        state = "none"
    else:
        dest = derived_path(box, "video", asset.id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            box.decoders.call("video.transcode", path, dest, max_height=720,
                              threads=min(2, box.settings.cpu_workers), limit=None, kill_when=job.should_stop)
        except OSError:
            raise  # disk or I/O trouble: worth retrying later
        except Exception as exc:
            if job.should_stop():
                from photobox.jobs import Stopping

                raise Stopping() from exc
            # A decoder failing on these bytes fails the same way next time: say so once.
            _record_error(box, asset.id, f"cannot convert this video for the browser: {_in_words(exc)}")
            with box.db.transaction() as conn:
                conn.execute("UPDATE assets SET rendition = 'failed' WHERE id = ?", (asset.id,))
            raise PermanentError(f"{asset.original_name}: cannot convert this video for the browser: "
                                 f"{_in_words(exc)}") from exc
        state = "ready"
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET rendition = ?, updated_at = ? WHERE id = ?", (state, box.clock(), asset.id))
