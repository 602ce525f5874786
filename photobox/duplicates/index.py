"""What one photo is compared with: its look-alikes, read from indexed SQL, so the cost of a
lookup depends on how many photos look like it, not on how many photos there are.

**Multi-index hashing** (Norouzi, Punjani, Fleet: "Fast Search in Hamming Space with
Multi-Index Hashing", CVPR 2012). A copy of unknown moment must be within
``UNKNOWN_MOMENT[0]`` = 10 bits of pHash. Cut the 64-bit pHash into four 16-bit bands: if
two hashes are within ``r`` bits, some band ``i`` differs by at most ``t_i`` bits, for any
``t`` with ``Σ (t_i + 1) = r + 1`` (else the bands alone would add up to more than ``r``).
For r = 10 that is t = (2, 2, 2, 1): a lookup probes every band value within 2 bits in three
bands and within 1 bit in the fourth, 3 × 137 + 17 = 428 values, each an index seek. Each
band has an expression index on ``dupe_hashes`` (migration 0014) that also holds the pHash,
so the full distance is checked from the index without touching the table, and only the
few hashes that pass are read further. SQLite keeps those indexes as hashes are stored: the
index is maintained, never rebuilt. On random hashes a lookup reads ~0.65 % of the library
(``scripts/bench dupes`` measures it at 10k, 100k and 1M).

**Same moment.** Two photos with the same camera time are copies under looser thresholds
(a crop moves the pHash by up to 16 bits): those come from the timeline's index on the
capture time, the window of one second either side.

Photos in the trash, videos and the video half of a Live Photo are left out (``ELIGIBLE``).
"""

from __future__ import annotations

import itertools
import json
from functools import lru_cache

import apsw
import numpy as np

from photobox.db.sql import id_chunks
from photobox.duplicates import detect
from photobox.duplicates.hashing import hamming
from photobox.library.assets import VISIBLE, VISIBLE_WITH_ARCHIVED

__all__ = ["BAND_RADII", "ELIGIBLE", "Finder", "probes"]

#: bits each band may differ by (the pigeonhole above, for UNKNOWN_MOMENT[0] = 10)
BAND_RADII = (2, 2, 2, 1)
_BAND_BITS = 16

#: a photo that can be a duplicate: a still (not the video of a Live Photo), not in the trash
ELIGIBLE = "a.kind = 'image' AND " + VISIBLE_WITH_ARCHIVED

# The expressions must be written exactly as in the indexes (0014_dupe_links.sql) for
# SQLite to use them. ``>>`` of a negative (signed) hash fills with ones; the mask drops them.
_BANDS = (
    "SELECT asset_id, phash FROM dupe_hashes WHERE (phash & 65535) IN (SELECT value FROM json_each(?1)) "
    "UNION ALL SELECT asset_id, phash FROM dupe_hashes "
    "WHERE ((phash >> 16) & 65535) IN (SELECT value FROM json_each(?2)) "
    "UNION ALL SELECT asset_id, phash FROM dupe_hashes "
    "WHERE ((phash >> 32) & 65535) IN (SELECT value FROM json_each(?3)) "
    "UNION ALL SELECT asset_id, phash FROM dupe_hashes "
    "WHERE ((phash >> 48) & 65535) IN (SELECT value FROM json_each(?4))"
)
# Two halves so each is served by an existing partial index on the capture time (the
# timeline's and the archive's; together they cover every photo that can be a duplicate).
_WINDOW = (
    "SELECT h.asset_id, h.phash, h.dhash FROM assets a JOIN dupe_hashes h ON h.asset_id = a.id "
    "WHERE a.sort_ts BETWEEN ?1 AND ?2 AND " + VISIBLE + " "
    "UNION ALL SELECT h.asset_id, h.phash, h.dhash FROM assets a JOIN dupe_hashes h ON h.asset_id = a.id "
    "WHERE a.sort_ts BETWEEN ?1 AND ?2 AND a.archived = 1 AND " + VISIBLE_WITH_ARCHIVED
)


@lru_cache(maxsize=8)
def _flips(bits: int, radius: int) -> np.ndarray:
    """Every mask of ``bits`` bits with at most ``radius`` bits set."""
    out = [0]
    for r in range(1, radius + 1):
        out += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), r)]
    return np.array(out, dtype=np.int64)


def probes(phash: int) -> list[list[int]]:
    """Per band, the band values a hash within ``UNKNOWN_MOMENT[0]`` bits of ``phash`` can have."""
    mask = (1 << _BAND_BITS) - 1
    return [((np.int64((phash >> (_BAND_BITS * band)) & mask)) ^ _flips(_BAND_BITS, radius)).tolist()
            for band, radius in enumerate(BAND_RADII)]


class Finder:
    """Lookups on one connection (a reader). What a lookup found is kept for the others of
    one batch: look-alikes share their pHash (a screenshot saved a thousand times) and meet
    the same photos again and again, so each distinct pHash is looked up once."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self._photos: dict[int, detect.Photo | None] = {}
        self._bands: dict[int, tuple[np.ndarray, ...]] = {}

    def photos(self, ids) -> dict[int, detect.Photo]:
        """What the pair rule needs about each of ``ids`` that is hashed and can be a duplicate."""
        missing = sorted({int(i) for i in ids} - self._photos.keys())
        for chunk, marks in id_chunks(missing):
            self._photos.update(dict.fromkeys(chunk))
            for row in self.conn.execute(
                    f"SELECT a.id, h.phash, h.dhash, a.sort_ts, a.taken_at, a.taken_at_source FROM assets a "
                    f"JOIN dupe_hashes h ON h.asset_id = a.id WHERE a.id IN ({marks}) AND {ELIGIBLE}", chunk):
                self._photos[row[0]] = detect.Photo(*row)
        return {i: p for i in ids if (p := self._photos.get(int(i))) is not None}

    def _arrays(self, ids: np.ndarray, dp: np.ndarray) -> tuple[np.ndarray, ...]:
        """(ids, d_phash, dhash, moment, has_subseconds) of the photos among ``ids`` that
        can be duplicates."""
        info = self.photos(ids.tolist())
        keep = np.fromiter((i in info for i in ids.tolist()), dtype=bool, count=len(ids))
        found = [info[i] for i in ids[keep].tolist()]
        return (ids[keep], dp[keep], np.array([p.dhash for p in found], dtype=np.int64),
                np.array([p.moment for p in found], dtype=np.float64),
                np.array([p.has_subseconds for p in found], dtype=bool))

    def _by_bands(self, phash: int) -> tuple[np.ndarray, ...]:
        """Every photo within ``UNKNOWN_MOMENT[0]`` bits of pHash of ``phash``."""
        if phash not in self._bands:
            rows = self.conn.execute(_BANDS, [json.dumps(p) for p in probes(phash)]).fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            dp = hamming(np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)), phash).astype(np.int64)
            keep = dp <= detect.UNKNOWN_MOMENT[0]
            ids, first = np.unique(ids[keep], return_index=True)  # a hash can match in several bands
            self._bands[phash] = self._arrays(ids, dp[keep][first])
        return self._bands[phash]

    def _by_moment(self, photo: detect.Photo) -> tuple[np.ndarray, ...]:
        """The photos taken within a second of ``photo`` and within the same-moment pHash distance."""
        rows = self.conn.execute(_WINDOW, (photo.sort_ts - 1.0, photo.sort_ts + 1.0)).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        dp = hamming(np.array([r[1] for r in rows], dtype=np.int64), photo.phash).astype(np.int64)
        keep = dp <= detect.SAME_MOMENT[0]
        return self._arrays(ids[keep], dp[keep])

    def matches(self, photo: detect.Photo) -> tuple[np.ndarray, np.ndarray]:
        """The photos the rule accepts as duplicates of ``photo``: (ids, pHash + dHash
        distances), closest first (then by id)."""
        parts = [self._by_bands(photo.phash)]
        if photo.timed:
            parts.append(self._by_moment(photo))
        ids, dp, dhash, moments, subseconds = (np.concatenate(x) for x in zip(*parts))
        ids, first = np.unique(ids, return_index=True)
        dp, dhash, moments, subseconds = dp[first], dhash[first], moments[first], subseconds[first]
        dd = hamming(dhash, photo.dhash).astype(np.int64)
        ok = detect.accepted(photo, moments, subseconds, dp, dd) & (ids != photo.asset_id)
        ids, distance = ids[ok], (dp + dd)[ok]
        order = np.lexsort((ids, distance))
        return ids[order], distance[order]
