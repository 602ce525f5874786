"""The ``dupes`` job: hash photos from their thumbnails, find their near-duplicates, and
regroup.

One job (target ``""``) works through every photo whose thumbnail is not hashed yet, in
batches: hash (a few ms each, from the ~250 px WebP thumbnail), store, compare the batch
with the stored hashes (a vectorised XOR + popcount scan), keep the pairs the rule accepts,
and at the end rebuild the groups from the stored pairs. The comparison goes through
:class:`~photobox.duplicates.detect.HashIndex`: a photo with a camera time is compared only
with untimed photos and those within a second of it (``scripts/bench dupes`` measures it). Idempotent: hashes and pairs are
upserts keyed by asset, and the groups are rebuilt from them as a whole.

A periodic task queues the job when assets changed since the last run began (new
thumbnails, trash, restore), so the review page follows what the user does elsewhere.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from photobox.duplicates import detect, hashing, store
from photobox.jobs import REGISTRY, Job, Stopping
from photobox.library.paths import derived_path

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BATCH", "queue_dupes", "run_dupes"]

log = logging.getLogger(__name__)

BATCH = 1024  # per batch the stored hashes are read once: bigger batches amortise that
_STAMP_KEY = "dupes_grouped_at"


def _hash_batch(box: Photobox, rows: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    out = []
    for asset_id, version in rows:
        try:
            h = hashing.hash_file(derived_path(box, "thumb", asset_id))
        except FileNotFoundError:
            continue  # thumbnail not made (yet): the next run looks again
        except (OSError, ValueError) as exc:
            log.warning("dupes: cannot read the thumbnail of asset %s: %s", asset_id, exc)
            continue
        out.append((asset_id, h.phash, h.dhash, version))
    return out


def run_dupes(box: Photobox, should_stop=lambda: False) -> dict[str, int]:
    """Hash what is pending, store accepted pairs, rebuild the groups; returns counts."""
    stats = {"hashed": 0, "pairs": 0, "groups": 0}
    with box.db.reader() as conn:
        # Read before hashing: anything that changes while this runs is newer, and queues a rerun.
        stamp = conn.execute("SELECT max(updated_at) FROM assets").fetchone()[0]
    after = 0
    while True:
        if should_stop():
            raise Stopping()
        with box.db.reader() as conn:
            rows = store.pending_assets(conn, BATCH, after)
        if not rows:
            break
        after = rows[-1][0]
        hashed = _hash_batch(box, rows)
        if not hashed:
            continue
        with box.db.transaction() as conn:
            store.save_hashes(conn, hashed, now=box.clock())
        with box.db.reader() as conn:
            index = store.hash_index(conn)
            new_ids = [r[0] for r in hashed]
            mine = store.photos(conn, new_ids)
            new = np.array([(r[0], r[1], r[2]) for r in hashed if r[0] in mine], dtype=np.int64).reshape(-1, 3)
            ts = np.array([mine[i].moment for i in new[:, 0].tolist()], dtype=np.float64)
            found = index.pairs(new[:, 0], new[:, 1], new[:, 2], ts)
            info = store.photos(conn, [i for a, b, _, _ in found for i in (a, b)])
        pairs = [(a, b, p + d) for a, b, p, d in found
                 if a in info and b in info and detect.is_duplicate(info[a], info[b], p, d)]
        with box.db.transaction() as conn:
            store.replace_pairs(conn, [r[0] for r in hashed], pairs)
        stats["hashed"] += len(hashed)
        stats["pairs"] += len(pairs)
    with box.db.transaction() as conn:
        stats["groups"] = store.rebuild_groups(conn)
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (_STAMP_KEY, repr(stamp or 0.0)))
    return stats


@REGISTRY.register("dupes", concurrency=1, priority=9)
def dupes_job(job: Job) -> None:
    stats = run_dupes(job.context, job.should_stop)
    if stats["hashed"]:
        log.info("dupes: hashed %(hashed)d photo(s), %(pairs)d near-duplicate pair(s), %(groups)d group(s)", stats)


async def queue_dupes(box: Photobox) -> None:
    """Periodic: queue ``dupes`` when assets changed since the last run began (a new
    thumbnail, trash, restore… all bump ``updated_at``): one indexed max(), so checking every
    minute costs nothing on a big library."""
    def due(conn) -> bool:
        last = conn.execute("SELECT value FROM meta WHERE key = ?", (_STAMP_KEY,)).fetchone()
        newest = conn.execute("SELECT max(updated_at) FROM assets").fetchone()[0]
        return newest is not None and (last is None or newest > float(last[0]))

    if await box.db.read(due):
        await box.scheduler.enqueue("dupes", "", force=True)
