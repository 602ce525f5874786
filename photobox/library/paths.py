"""Where an asset's original and derived files are. Derived files are addressed by asset id,
never by a user-supplied name, so no request can name a path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from photobox.datadir.storage import safe_join

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["DERIVED", "derived_path", "library_root", "original_path"]

UPLOAD_LIBRARY_ID = 1

#: kind → (cache folder, file extension)
DERIVED = {
    "thumb": ("thumbs", "webp"),
    "preview": ("previews", "jpg"),  # JPEG: fastest to encode on a Pi, and every browser shows it
    "video": ("video", "mp4"),
    "motion": ("motion", "mp4"),
}


def derived_path(box: Photobox, kind: str, asset_id: int) -> Path:
    """``cache/<kind>/<id // 1000>/<id>.<ext>``: at most 1000 files per folder."""
    folder, ext = DERIVED[kind]
    return box.path("cache", folder, f"{int(asset_id) // 1000:04d}", f"{int(asset_id)}.{ext}")


def library_root(box: Photobox, conn: apsw.Connection, library_id: int) -> Path:
    """The root folder of a library (the upload library lives in the data folder)."""
    if library_id == UPLOAD_LIBRARY_ID:
        return box.path("library")
    row = conn.execute("SELECT root FROM libraries WHERE id = ?", (library_id,)).fetchone()
    if row is None:
        raise KeyError(f"no library {library_id}")
    return Path(row[0])


def original_path(box: Photobox, conn: apsw.Connection, library_id: int, rel_path: str) -> Path:
    """The original file of an asset, checked to stay inside its library."""
    return safe_join(library_root(box, conn, library_id), rel_path)
