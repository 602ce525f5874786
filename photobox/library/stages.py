"""The first stages of every file: read it (external libraries), its metadata, thumbnails,
the video inside a Motion Photo, and a browser-playable video when the original is not.

Each stage queues, in its own transaction, the stages declared to run after it (see
:mod:`photobox.pipeline`). Every stage is idempotent (the scheduler delivers at least once):
derived files are written to a temp name and renamed, rows are updated in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from photobox.jobs import Job, PermanentError
from photobox.library import assets
from photobox.library.actions import empty_expired_trash
from photobox.library.ingest import (
    TRUNCATED_NOTE,
    extract_metadata,
    ingest_library_file,
    link_live_photo,
    not_media_reason,
)
from photobox.library.memories import refresh_memories
from photobox.library.paths import derived_path, original_path
from photobox.library.uploads import expire_uploads
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["feature"]

feature = Feature("library")
feature.every(3600, "empty-trash")(empty_expired_trash)
feature.every(3600, "expire-uploads")(expire_uploads)
feature.every(3600, "memories")(refresh_memories)


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
        assets.set_error(conn, asset_id, text, now=box.clock())


@feature.job("ingest.file", title="Reading library files", concurrency=None, priority=50)
def ingest_file_job(job: Job) -> None:
    ingest_library_file(job.context, int(job.target))


@feature.job("metadata", title="Metadata", concurrency=None, priority=40)
def metadata_job(job: Job) -> None:
    """Read the metadata again (e.g. after an extractor upgrade) and redo the later stages."""
    box, asset, path = _load(job)
    md = extract_metadata(path, asset.mtime, box)
    if md.kind is None:
        raise PermanentError(f"{asset.original_name}: {not_media_reason(md)}")
    with box.db.transaction() as conn:
        assets.apply_metadata(conn, asset.id, md, mtime=asset.mtime, now=box.clock())
        link_live_photo(conn, asset.id, asset.kind, getattr(md, "live_photo_id", None))
        box.queue_after(conn, "metadata", asset.id, asset.kind, md)


@feature.job("thumbs", title="Thumbnails", concurrency=None, priority=30, after="metadata")
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
        box.queue_after(conn, "thumbs", asset.id, asset.kind, asset)  # search, faces… need the preview
        assets.record_thumbnail(conn, asset.id, placeholder=getattr(result, "placeholder", None),
                                width=getattr(result, "source_width", None),
                                height=getattr(result, "source_height", None), now=box.clock())
        if getattr(result, "truncated", False):
            # Shown as far as it goes, and said: the viewer and the API show the asset's error.
            assets.set_error(conn, asset.id, TRUNCATED_NOTE)


@feature.job("motion", title="Motion photos", priority=20, after="metadata",
             wanted=lambda kind, md: kind == "image" and bool(getattr(md, "motion_video_length", None)))
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
        assets.set_motion_state(conn, asset.id, "embedded" if found else None, now=box.clock())


@feature.job("video", title="Video renditions", priority=5, after="metadata",
             wanted=lambda kind, md: kind == "video")
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
                assets.set_rendition(conn, asset.id, "failed")
            raise PermanentError(f"{asset.original_name}: cannot convert this video for the browser: "
                                 f"{_in_words(exc)}") from exc
        state = "ready"
    with box.db.transaction() as conn:
        assets.set_rendition(conn, asset.id, state, now=box.clock())


@feature.commands
def _commands(commands) -> None:
    from photobox.library.commands import add_commands

    add_commands(commands)


@feature.routes
def _routes():
    from photobox.library.api import assets, uploads
    from photobox.library.views import albums, folders, menu, share_target, timeline, upload, viewer

    return [*timeline.ROUTES, *viewer.ROUTES, *albums.ROUTES, *upload.ROUTES, *menu.ROUTES, *share_target.ROUTES,
            *folders.ROUTES, *assets.ROUTES, *uploads.ROUTES]


@feature.settings_section("settings_libraries.html")
def _folders(box: Photobox, conn):
    from photobox.library.views.folders import libraries_section

    return libraries_section(box, conn)


@feature.settings_section("settings_storage.html")
def _storage(box: Photobox, conn):
    from photobox.library.views.folders import storage_section

    return storage_section(box, conn)
