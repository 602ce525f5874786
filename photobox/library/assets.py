"""SQL for assets. Every function takes an ``apsw.Connection``; writes run inside a
write transaction (``Database.transaction``)."""

from __future__ import annotations

import calendar
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import apsw

__all__ = ["Asset", "apply_metadata", "find_by_checksum", "get_asset", "date_basis", "insert_asset", "sort_key"]

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
