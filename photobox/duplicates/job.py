"""The ``dupes`` job: hash photos from their thumbnails, update their look-alike lists and
regroup what changed.

It works through the ``dupe_dirty`` queue (filled by triggers: a new or regenerated
thumbnail, a changed capture time, trash, restore, a deleted look-alike), in batches:

1. hash what needs it (a few ms each, from the ~250 px WebP thumbnail), store;
2. on a reader, look up each photo's matches through the maintained index
   (:mod:`~photobox.duplicates.index`: a few hundred index seeks, whatever the library's
   size) — the slow part, kept out of the write lock so uploads are not held up;
3. in one short write transaction, update the links between look-alikes
   (:mod:`~photobox.duplicates.links`), regroup the trees they touch
   (:func:`~photobox.duplicates.store.regroup`) and take the batch off the queue.

Idempotent: a batch that is interrupted stays queued and is done again. The periodic task
queues the job when the queue is not empty (one indexed look), so the review page follows
what the user does elsewhere.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from photobox.duplicates import hashing, links, store
from photobox.jobs import Job, Stopping
from photobox.library.paths import derived_path
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BATCH", "queue_dupes", "run_dupes"]

log = logging.getLogger(__name__)

feature = Feature("duplicates")

BATCH = 256  # photos per write transaction (each costs ~1 ms of lookups on the reader before it)


def _hash_batch(box: Photobox, rows: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    out = []
    for asset_id, version in rows:
        try:
            h = hashing.hash_file(derived_path(box, "thumb", asset_id))
        except FileNotFoundError:
            continue  # no thumbnail after all: a new one bumps thumb_version, which queues the photo again
        except (OSError, ValueError) as exc:
            log.warning("dupes: cannot read the thumbnail of asset %s: %s", asset_id, exc)
            continue
        out.append((asset_id, h.phash, h.dhash, version))
    return out


def run_dupes(box: Photobox, should_stop=lambda: False) -> dict[str, int]:
    """Work through the queue; returns counts (photos hashed, photos searched, groups written)."""
    stats = {"hashed": 0, "searched": 0, "groups": 0}
    after = 0
    while True:
        if should_stop():
            raise Stopping()
        with box.db.reader() as conn:
            queued = store.dirty(conn, BATCH, after)
            todo = store.needs_hash(conn, [i for _, i in queued])
        if not queued:
            break
        after = queued[-1][0]
        hashed = _hash_batch(box, todo)
        if hashed:
            with box.db.transaction() as conn:
                store.save_hashes(conn, hashed, now=box.clock())
        with box.db.reader() as conn:
            work = links.plan(conn, {i for _, i in queued})
        with box.db.transaction() as conn:
            touched = links.apply(conn, work)
            stats["groups"] += store.regroup(conn, touched)
            store.done(conn, [s for s, _ in queued])
        stats["hashed"] += len(hashed)
        stats["searched"] += work.searched
    return stats


@feature.job("dupes", title="Duplicates", priority=9)
def dupes_job(job: Job) -> None:
    stats = run_dupes(job.context, job.should_stop)
    if stats["hashed"]:
        log.info("dupes: hashed %(hashed)d photo(s), %(searched)d searched, %(groups)d group(s) written", stats)


@feature.every(60, "duplicates")
async def queue_dupes(box: Photobox) -> None:
    """Periodic: queue ``dupes`` when photos wait in its queue (a primary-key look, so
    checking every minute costs nothing on a big library)."""
    def due(conn) -> bool:
        return conn.execute("SELECT 1 FROM dupe_dirty LIMIT 1").fetchone() is not None

    if await box.db.read(due):
        await box.scheduler.enqueue("dupes", "", force=True)


@feature.routes
def _routes():
    from photobox.duplicates import views as duplicates

    return duplicates.ROUTES
