"""The ``assets`` table's store: every write to it, its reads by id and checksum, and the
conditions lists share (:data:`VISIBLE` and its variants). Every function takes an
``apsw.Connection``; writes run inside a write transaction (``Database.transaction``).

Nothing else in photobox writes ``assets`` or spells out what "shown" means
(tests/test_table_owners.py checks): a column's meaning lives in one place.
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw

from photobox.db.sql import id_chunks

__all__ = ["ACTIONS", "DETAIL_COLUMNS", "IN_TRASH", "NOT_TRASHED", "VISIBLE", "VISIBLE_WITH_ARCHIVED", "Asset",
           "apply_action", "apply_metadata", "count_assets", "date_basis", "delete_asset", "details", "expired_trash",
           "file_rows", "find_by_checksum", "get_asset", "insert_asset", "library_totals", "mark_offline",
           "motion_video", "move_file", "pair_motion", "record_thumbnail", "replace_file", "select", "set_error",
           "set_favorite_description", "set_marks", "set_motion_state", "set_original_name", "set_rendition",
           "sort_key", "summaries", "trash_library", "trashed_files", "version"]

# -- which assets a list shows ------------------------------------------------------------
# Conditions over the table named ``a`` (``FROM assets a``). The partial indexes of the
# migrations (0002, 0003, 0007, 0010, 0014) carry the same terms, which is what lets SQLite
# use them: keep the terms as they are.

#: Not in the trash.
NOT_TRASHED = "a.trashed_at IS NULL"
#: In the trash.
IN_TRASH = "a.trashed_at IS NOT NULL"
#: Shown in lists that include the archive (favourites, people, search, shares): not in the
#: trash and not the video half of a Live Photo (that plays inside its still).
VISIBLE_WITH_ARCHIVED = NOT_TRASHED + " AND a.motion_of IS NULL"
#: Shown on the timeline: as :data:`VISIBLE_WITH_ARCHIVED`, and not archived.
VISIBLE = NOT_TRASHED + " AND a.archived = 0 AND a.motion_of IS NULL"

# Columns the extractor fills, by Metadata attribute name (same names as the columns).
METADATA_COLUMNS = (
    "mime", "taken_at", "tz_offset_min", "taken_at_source", "width", "height", "display_width",
    "display_height", "orientation", "duration", "video_rotation", "video_codec", "audio_codec",
    "latitude", "longitude", "altitude", "make", "model", "lens", "exposure_time", "f_number", "iso",
    "focal_length", "live_photo_id",
)

_ASSET_COLUMNS = (
    "id", "library_id", "rel_path", "original_name", "checksum", "size", "mtime", "kind", "mime", "taken_at",
    "tz_offset_min", "taken_at_source", "sort_ts", "local_date", "width", "height", "display_width",
    "display_height", "duration", "live_photo_id", "motion_of", "motion_state", "thumb_version", "rendition",
    "favorite", "archived", "trashed_at", "offline", "error",
)


@dataclass(frozen=True, slots=True)
class Asset:
    id: int
    library_id: int
    rel_path: str
    original_name: str
    checksum: bytes
    size: int
    mtime: float
    kind: str
    mime: str | None
    taken_at: str | None
    tz_offset_min: int | None
    taken_at_source: str | None
    sort_ts: float
    local_date: str | None
    width: int | None
    height: int | None
    display_width: int | None
    display_height: int | None
    duration: float | None
    live_photo_id: str | None
    motion_of: int | None
    motion_state: str | None
    thumb_version: int
    rendition: str | None
    favorite: int
    archived: int
    trashed_at: float | None
    offline: int
    error: str | None


_SELECT = "SELECT " + ", ".join(_ASSET_COLUMNS) + " FROM assets"


def get_asset(conn: apsw.Connection, asset_id: int) -> Asset | None:
    """One asset by id."""
    row = conn.execute(_SELECT + " WHERE id = ?", (asset_id,)).fetchone()
    return Asset(*row) if row else None


def find_by_checksum(conn: apsw.Connection, checksum: bytes) -> Asset | None:
    """The asset with these bytes, if photobox has it (in the trash too)."""
    row = conn.execute(_SELECT + " WHERE checksum = ? ORDER BY id LIMIT 1", (checksum,)).fetchone()
    return Asset(*row) if row else None


def sort_key(taken_at: str | None, fallback: float | None, added_at: float | None = None) -> tuple[float, str | None]:
    """(sort_ts, local_date) from a local ISO date-time: wall-clock seconds and its day.

    The timeline orders and groups by the time on the photographer's clock, as Google
    Photos does: a trip's photos stay on the day they were taken wherever you look at them.
    A file without a date of its own is placed by the best time known: ``fallback`` (the
    file's modification time), else ``added_at`` (when photobox got it) when the file time
    is missing or cannot be right (see :func:`date_basis`). Both become this box's local
    wall clock, as the metadata reader does with an mtime, so an undated file sorts among
    the photos taken at the same local time.
    """
    if taken_at:
        try:
            dt = datetime.fromisoformat(taken_at)
        except ValueError:
            dt = None
        if dt is not None:
            dt = dt.replace(tzinfo=None)
            return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6, dt.date().isoformat()
    for when in ((fallback if _file_time_usable(fallback, added_at) else None), added_at):
        if when is None or not math.isfinite(when):
            continue
        try:
            local = datetime.fromtimestamp(when)
        except (OverflowError, OSError, ValueError):
            continue
        return calendar.timegm(local.timetuple()) + local.microsecond / 1e6, local.date().isoformat()
    return (fallback if fallback is not None and math.isfinite(fallback) else 0.0), None


_EPOCH_SLACK = 86_400.0  # an mtime of 0 (or a day after) is a tool that lost the time, not 1970
_FUTURE_SLACK = 86_400.0  # a local clock is at most 14 h ahead of UTC; more is a wrong file time
_ADDED_WINDOW = 60.0  # an mtime this close to the import is the import time (no file time was sent)


def _file_time_usable(mtime: float | None, added_at: float | None) -> bool:
    return (mtime is not None and math.isfinite(mtime) and mtime > _EPOCH_SLACK
            and (added_at is None or mtime <= added_at + _FUTURE_SLACK))


def date_basis(taken_at: str | None, taken_at_source: str | None, mtime: float | None,
               added_at: float | None) -> str:
    """What places an asset in time: ``"file"`` (a date the file records, or its name),
    ``"mtime"`` (the file's modification time) or ``"added"`` (when photobox got it: the
    upload sent no file time, or the file time cannot be right)."""
    if taken_at and taken_at_source != "mtime":
        return "file"
    if _file_time_usable(mtime, added_at) and (added_at is None or abs(mtime - added_at) >= _ADDED_WINDOW):
        return "mtime"
    return "added"


def insert_asset(
    conn: apsw.Connection, *, library_id: int, rel_path: str, original_name: str, checksum: bytes, size: int,
    mtime: float, kind: str, now: float,
) -> int:
    """Create an asset row (metadata comes from :func:`apply_metadata`); return its id."""
    sort_ts, local_date = sort_key(None, mtime, now)
    conn.execute(
        "INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, local_date, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, local_date, now, now),
    )
    return conn.last_insert_rowid()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def apply_metadata(conn: apsw.Connection, asset_id: int, md: Any, *, mtime: float, now: float) -> None:
    """Store what the extractor read: the known columns plus the whole record as JSON."""
    values = {col: _plain(getattr(md, col, None)) for col in METADATA_COLUMNS}
    if isinstance(values["iso"], (list, tuple)):
        values["iso"] = values["iso"][0] if values["iso"] else None
    added = conn.execute("SELECT created_at FROM assets WHERE id = ?", (asset_id,)).fetchone()
    # A date the metadata reader took from the mtime is re-checked here against the import time.
    taken = values["taken_at"] if values["taken_at_source"] != "mtime" else None
    sort_ts, local_date = sort_key(taken, mtime, added[0] if added else now)
    record = md.to_dict() if hasattr(md, "to_dict") else dict(values)
    sets = ", ".join(f"{col} = :{col}" for col in METADATA_COLUMNS)
    conn.execute(
        f"UPDATE assets SET {sets}, sort_ts = :sort_ts, local_date = :local_date, metadata = :metadata, "
        "error = :error, updated_at = :now WHERE id = :id",
        {**values, "sort_ts": sort_ts, "local_date": local_date, "id": asset_id, "now": now,
         "metadata": json.dumps(record, default=str, separators=(",", ":")),
         "error": getattr(md, "error", None)},
    )


# -- reads for pages ------------------------------------------------------------------------

#: The columns of the viewer's details, in :func:`details` order.
DETAIL_COLUMNS = ("id, kind, original_name, mime, size, taken_at, tz_offset_min, taken_at_source, width, height, "
                  "display_width, display_height, duration, latitude, longitude, altitude, make, model, lens, "
                  "exposure_time, f_number, iso, focal_length, favorite, archived, trashed_at, offline, thumb_version, "
                  "motion_state, rendition, description, error, library_id, rel_path, motion_of, sort_ts, mtime, "
                  "created_at, metadata")
_DETAIL_NAMES = tuple(c.strip() for c in DETAIL_COLUMNS.split(","))


def details(conn: apsw.Connection, asset_id: int) -> dict[str, Any] | None:
    """Everything the viewer shows of one asset, by column name (``metadata`` as stored JSON text)."""
    row = conn.execute(f"SELECT {DETAIL_COLUMNS} FROM assets WHERE id = ?", (asset_id,)).fetchone()
    return dict(zip(_DETAIL_NAMES, row)) if row else None


def version(conn: apsw.Connection) -> tuple:
    """(largest id, latest change): a key that changes whenever an asset is added or changed,
    for caches of whole-library answers (two index lookups)."""
    return conn.execute("SELECT max(id), max(updated_at) FROM assets").fetchone()


def count_assets(conn: apsw.Connection) -> int:
    """How many assets photobox has (the trash included)."""
    return conn.execute("SELECT count(*) FROM assets").fetchone()[0]


def library_totals(conn: apsw.Connection, upload_library_id: int) -> tuple[int, int, int]:
    """(uploaded assets, their bytes, assets of external libraries)."""
    count, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM assets WHERE library_id = ?",
                               (upload_library_id,)).fetchone()
    external = conn.execute("SELECT count(*) FROM assets WHERE library_id != ?", (upload_library_id,)).fetchone()[0]
    return count, size, external


def summaries(conn: apsw.Connection, ids: list[int]) -> dict[int, tuple[int, str, str, int]]:
    """{id: (id, original name, kind, thumb version)} of those of ``ids`` that exist."""
    out = {}
    for chunk, marks in id_chunks(ids):
        out.update((r[0], r) for r in conn.execute(
            f"SELECT id, original_name, kind, thumb_version FROM assets WHERE id IN ({marks})", chunk))
    return out


def file_rows(conn: apsw.Connection, ids: list[int]) -> list[tuple[int, int, str, str]]:
    """(id, library id, path in the library, original name) of those of ``ids`` that exist."""
    out = []
    for chunk, marks in id_chunks(ids):
        out += conn.execute(f"SELECT id, library_id, rel_path, original_name FROM assets WHERE id IN ({marks})",
                            chunk).fetchall()
    return out


def motion_video(conn: apsw.Connection, still_id: int) -> int | None:
    """The id of the video paired with a Live Photo still, if any."""
    row = conn.execute("SELECT id FROM assets WHERE motion_of = ? ORDER BY id LIMIT 1", (still_id,)).fetchone()
    return row[0] if row else None


# -- what a user does: favourite, archive, trash, restore -----------------------------------

# action -> SQL that applies it to the assets in the temp table `sel`
ACTIONS = {
    "favorite": "UPDATE assets SET favorite = 1, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "unfavorite": "UPDATE assets SET favorite = 0, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "archive": "UPDATE assets SET archived = 1, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "unarchive": "UPDATE assets SET archived = 0, updated_at = :now WHERE id IN (SELECT id FROM sel)",
    "trash": "UPDATE assets SET trashed_at = :now, updated_at = :now WHERE trashed_at IS NULL "
             "AND id IN (SELECT id FROM sel)",
    "restore": "UPDATE assets SET trashed_at = NULL, updated_at = :now WHERE id IN (SELECT id FROM sel)",
}


def select(conn: apsw.Connection, ids: Iterable[int], *, videos: bool = True) -> int:
    """Fill this connection's temp table ``sel`` with ``ids`` (and, with ``videos``, their Live
    Photo videos, which follow their still everywhere); return the count. Statements over many
    assets join ``sel`` instead of a long ``IN (?, ?, …)``."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sel (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM sel")
    conn.executemany("INSERT OR IGNORE INTO sel (id) VALUES (?)", [(int(i),) for i in ids])
    if videos:
        conn.execute("INSERT OR IGNORE INTO sel (id) SELECT id FROM assets WHERE motion_of IN (SELECT id FROM sel)")
    return conn.execute("SELECT count(*) FROM sel").fetchone()[0]


def apply_action(conn: apsw.Connection, action: str, ids: Iterable[int], *, now: float) -> int:
    """Apply one of :data:`ACTIONS` to ``ids`` and their Live Photo videos; returns how many assets it touched."""
    sql = ACTIONS[action]
    select(conn, ids)
    conn.execute(sql, {"now": now})
    return conn.changes()


def trashed_files(conn: apsw.Connection, ids: Iterable[int]) -> list[tuple[int, int, str]]:
    """(id, library id, path) of those of ``ids`` (and their Live Photo videos) in the trash."""
    select(conn, ids)
    return conn.execute(f"SELECT a.id, a.library_id, a.rel_path FROM assets a JOIN sel ON sel.id = a.id "
                        f"WHERE {IN_TRASH}").fetchall()


def expired_trash(conn: apsw.Connection, *, before: float, limit: int = 500) -> list[int]:
    """Ids of assets that have been in the trash since before ``before``."""
    return [i for (i,) in conn.execute(
        f"SELECT a.id FROM assets a WHERE {IN_TRASH} AND a.trashed_at < ? ORDER BY a.trashed_at LIMIT ?",
        (before, limit))]


def delete_asset(conn: apsw.Connection, asset_id: int) -> None:
    """Remove an asset's row for good (its videos lose their still; albums, faces… follow by cascade)."""
    conn.execute("UPDATE assets SET motion_of = NULL WHERE motion_of = ?", (asset_id,))
    conn.execute("DELETE FROM assets WHERE id = ?", (asset_id,))


def set_marks(conn: apsw.Connection, asset_id: int, *, favorite: int, archived: int, trashed_at: float | None,
              description: str | None, videos: Iterable[int] = (), now: float) -> None:
    """Restore a user's marks on an asset (from a sidecar); its Live Photo ``videos`` get the
    same favourite, archive and trash marks (a video has no description of its own)."""
    conn.execute("UPDATE assets SET favorite = ?, archived = ?, trashed_at = ?, description = ?, updated_at = ? "
                 "WHERE id = ?", (favorite, archived, trashed_at, description, now, asset_id))
    for video in videos:
        conn.execute("UPDATE assets SET favorite = ?, archived = ?, trashed_at = ?, updated_at = ? WHERE id = ?",
                     (favorite, archived, trashed_at, now, video))


def set_favorite_description(conn: apsw.Connection, asset_id: int, favorite: int, description: str | None, *,
                             now: float) -> None:
    """Set an asset's favourite mark and description (what a kept duplicate inherits)."""
    conn.execute("UPDATE assets SET favorite = ?, description = ?, updated_at = ? WHERE id = ?",
                 (favorite, description, now, asset_id))


def set_original_name(conn: apsw.Connection, asset_id: int, name: str, *, now: float) -> None:
    """Rename an asset as the user sees it (the original file keeps its name on disk)."""
    conn.execute("UPDATE assets SET original_name = ?, updated_at = ? WHERE id = ?", (name, now, asset_id))


# -- what the pipeline and the library scans record -------------------------------------------

def set_error(conn: apsw.Connection, asset_id: int, text: str | None, *, now: float | None = None) -> None:
    """Record why an asset cannot be shown fully (``now`` None: its change time stays)."""
    conn.execute("UPDATE assets SET error = ?, updated_at = coalesce(?, updated_at) WHERE id = ?",
                 (text, now, asset_id))


def record_thumbnail(conn: apsw.Connection, asset_id: int, *, placeholder: bytes | None, width: int | None,
                     height: int | None, now: float) -> None:
    """A new thumbnail and preview exist: bump the version (URLs change), keep the placeholder
    and the decoded size, and forget an earlier "cannot show" failure."""
    conn.execute(
        "UPDATE assets SET placeholder = ?, thumb_version = thumb_version + 1, "
        "display_width = coalesce(display_width, ?), display_height = coalesce(display_height, ?), "
        # a retry that worked: the failure recorded by an earlier attempt is no longer true
        "error = CASE WHEN error LIKE 'cannot show this file:%' THEN NULL ELSE error END, "
        "updated_at = ? WHERE id = ?", (placeholder, width, height, now, asset_id))


def set_motion_state(conn: apsw.Connection, asset_id: int, state: str | None, *, now: float) -> None:
    """``paired`` (a Live Photo video), ``embedded`` (a Motion Photo's video was extracted) or None."""
    conn.execute("UPDATE assets SET motion_state = ?, updated_at = ? WHERE id = ?", (state, now, asset_id))


def pair_motion(conn: apsw.Connection, still: int, video: int, *, now: float) -> None:
    """Make ``video`` the motion part of the Live Photo ``still`` (it leaves the timeline)."""
    conn.execute("UPDATE assets SET motion_of = ?, updated_at = ? WHERE id = ?", (still, now, video))
    set_motion_state(conn, still, "paired", now=now)


def set_rendition(conn: apsw.Connection, asset_id: int, state: str, *, now: float | None = None) -> None:
    """A video's browser rendition: ``none`` (plays as is), ``ready`` or ``failed``."""
    conn.execute("UPDATE assets SET rendition = ?, updated_at = coalesce(?, updated_at) WHERE id = ?",
                 (state, now, asset_id))


def replace_file(conn: apsw.Connection, asset_id: int, *, checksum: bytes, size: int, mtime: float,
                 now: float) -> None:
    """The asset's file was edited in place: new bytes, same asset (and online again)."""
    conn.execute("UPDATE assets SET checksum = ?, size = ?, mtime = ?, offline = 0, updated_at = ? WHERE id = ?",
                 (checksum, size, mtime, now, asset_id))


def move_file(conn: apsw.Connection, asset_id: int, library_id: int, rel_path: str, *, now: float,
              mtime: float | None = None) -> None:
    """Point the asset at another copy of its bytes; with ``mtime``, an offline asset's file
    that turned up at a new path (it is online again)."""
    if mtime is None:
        conn.execute("UPDATE assets SET library_id = ?, rel_path = ?, updated_at = ? WHERE id = ?",
                     (library_id, rel_path, now, asset_id))
    else:
        conn.execute("UPDATE assets SET library_id = ?, rel_path = ?, offline = 0, mtime = ?, updated_at = ? "
                     "WHERE id = ?", (library_id, rel_path, mtime, now, asset_id))


def mark_offline(conn: apsw.Connection, asset_id: int, *, now: float) -> None:
    """The asset's file is gone from its library (kept, with albums and faces, until it returns)."""
    conn.execute("UPDATE assets SET offline = 1, updated_at = ? WHERE id = ?", (now, asset_id))


def trash_library(conn: apsw.Connection, library_id: int) -> None:
    """Move every asset of a library to the trash (those already there keep their time)."""
    conn.execute("UPDATE assets SET trashed_at = coalesce(trashed_at, unixepoch()) WHERE library_id = ?",
                 (library_id,))
