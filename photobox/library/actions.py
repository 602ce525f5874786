"""Deleting for good: what was in the trash goes, with its derived files and uploaded original.

Originals are never touched except by :func:`purge`, which runs only for assets already in
the trash (an explicit "delete permanently" or the trash's own expiry) and deletes the
original only for uploaded files: files of external libraries are never deleted by photobox.
A Live Photo's video follows its still everywhere. The marks a user sets (favourite,
archive, trash, restore) are :func:`photobox.library.assets.apply_action`; albums are
:mod:`photobox.library.albums`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from photobox.library import assets
from photobox.library.paths import DERIVED, UPLOAD_LIBRARY_ID, derived_path, original_path

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["empty_expired_trash", "purge"]

log = logging.getLogger(__name__)


def purge(box: Photobox, ids: Iterable[int]) -> int:
    """Delete trashed assets for good: rows, derived files, and uploaded originals.

    Only assets already in the trash are purged. The row goes first (in one transaction),
    then the files: a crash in between leaves an orphan file, which the integrity check
    reports, never a row pointing at nothing.
    """
    doomed: list[tuple[int, int, str]] = []
    with box.db.transaction() as conn:
        originals = []
        for asset_id, library_id, rel_path in assets.trashed_files(conn, ids):
            originals.append((asset_id, library_id, original_path(box, conn, library_id, rel_path)))
            conn.execute("DELETE FROM library_files WHERE asset_id = ? AND library_id = ?", (asset_id, UPLOAD_LIBRARY_ID))
            conn.execute("DELETE FROM jobs WHERE target = ? AND kind NOT IN ('scan', 'ingest.file')",
                         (str(asset_id),))
            assets.delete_asset(conn, asset_id)
        doomed = originals
    for asset_id, library_id, path in doomed:
        for kind in DERIVED:
            derived_path(box, kind, asset_id).unlink(missing_ok=True)
        if library_id == UPLOAD_LIBRARY_ID:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("could not delete the original %s: %s", path, exc)
    return len(doomed)


async def empty_expired_trash(box: Photobox) -> int:
    """Periodic: delete for good what has been in the trash longer than ``trash_days``."""
    import asyncio

    days = box.settings.trash_days
    if days <= 0:
        return 0
    total = 0
    while True:
        ids = await box.db.read(lambda c: assets.expired_trash(c, before=box.clock() - days * 86400))
        if not ids:
            return total
        total += await asyncio.to_thread(purge, box, ids)
