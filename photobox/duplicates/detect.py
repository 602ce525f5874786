"""Which photos are copies of one another: the pair rule and the grouping. Pure code (no
database), so it is unit-tested and benchmarked on its own.

Pixels alone cannot tell a copy from a burst: two burst frames a second apart can hash
closer than a photo and its 10 %-cropped copy (measured on generated cases, see
``scripts/bench dupes``). What separates them is the moment: a copy keeps the original's
capture time (resized, re-encoded, edited, converted) or has none (messaging apps strip
EXIF), while burst frames carry distinct times from the camera. So:

1. **Different moments are never duplicates.** Both photos have a camera-written capture
   time (EXIF/XMP/IPTC/QuickTime, not a file name or mtime) and they differ by a second or
   more, or both carry sub-seconds and those differ.
2. **Same moment** (both timed, equal): duplicates when the hashes are within the loose
   thresholds (``SAME_MOMENT``): crops and edits move a pHash by up to ~14 bits.
3. **Moment unknown** (one or both without a camera time): duplicates only within the
   strict thresholds (``UNKNOWN_MOMENT``): re-encodes and messaging copies stay within a few
   bits, while unrelated screenshots or scans can come close under the loose ones.

Grouping is union-find over accepted pairs, closest first, with cannot-links: two sets are
not joined when any member of one is a different moment from any member of the other, or
the user said "not duplicates" to a group that held both. So a messaging copy of one burst
frame joins that frame and does not chain the whole burst together. The pairs it is given
are the stored links between look-alikes (:mod:`photobox.duplicates.links`), not every pair.

Known limit: burst frames within one second from a camera that writes no sub-seconds
(older compacts) have the same moment, and pixels cannot keep them apart (the bench's
"hard case"); phones write sub-seconds. CLIP vectors are not used (yet): their similarity
thresholds need calibrating on a real model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from photobox.duplicates.hashing import hamming

__all__ = ["Photo", "SAME_MOMENT", "UNKNOWN_MOMENT", "TRUSTED_TIME_SOURCES", "accepted", "candidate_pairs",
           "different_moments", "group_pairs", "is_duplicate", "keeper_order"]

#: capture-time sources written by the camera or an editor (a copy carries them along)
TRUSTED_TIME_SOURCES = frozenset({"exif", "xmp", "iptc", "quicktime", "video"})

#: (max pHash distance, max pHash + dHash distance) per case
SAME_MOMENT = (16, 32)
UNKNOWN_MOMENT = (10, 20)
#: the widest thresholds: candidates farther than this are never looked at
MAX_PHASH = max(SAME_MOMENT[0], UNKNOWN_MOMENT[0])


@dataclass(frozen=True, slots=True)
class Photo:
    """What the rule needs about one photo (hashes, moment and a few facts for the keeper)."""

    asset_id: int
    phash: int
    dhash: int
    sort_ts: float | None = None
    taken_at: str | None = None
    taken_at_source: str | None = None

    @property
    def timed(self) -> bool:
        return self.taken_at is not None and self.taken_at_source in TRUSTED_TIME_SOURCES and self.sort_ts is not None

    @property
    def moment(self) -> float:
        """The capture time when timed, else NaN."""
        return float(self.sort_ts) if self.timed else float("nan")

    @property
    def has_subseconds(self) -> bool:
        return self.taken_at is not None and "." in self.taken_at


def different_moments(a: Photo, b: Photo) -> bool:
    """Both have camera capture times, and they are not the same moment."""
    if not (a.timed and b.timed):
        return False
    delta = abs(a.sort_ts - b.sort_ts)  # type: ignore[operator]
    if delta >= 1.0:
        return True
    return a.has_subseconds and b.has_subseconds and delta >= 0.001


def accepted(a: Photo, moments: np.ndarray, subseconds: np.ndarray, d_phash: np.ndarray,
             d_dhash: np.ndarray) -> np.ndarray:
    """The pair rule (module docstring) between ``a`` and many photos at once: which of them
    are its duplicates. ``moments`` are their :attr:`Photo.moment` (NaN when untimed),
    ``subseconds`` their :attr:`Photo.has_subseconds`, the distances their hashes' to ``a``'s."""
    d_phash, d_dhash = np.asarray(d_phash), np.asarray(d_dhash)
    same = np.zeros(d_phash.shape, dtype=bool)
    if a.timed:
        timed = ~np.isnan(moments)
        delta = np.abs(np.where(timed, moments, 0.0) - a.sort_ts)
        apart = (delta >= 1.0) | (a.has_subseconds & np.asarray(subseconds, dtype=bool) & (delta >= 0.001))
        same = timed & ~apart
        d_phash = np.where(timed & apart, 1 << 30, d_phash)  # different moments: never
    max_p = np.where(same, SAME_MOMENT[0], UNKNOWN_MOMENT[0])
    max_sum = np.where(same, SAME_MOMENT[1], UNKNOWN_MOMENT[1])
    return (d_phash <= max_p) & (d_phash + d_dhash <= max_sum)


def is_duplicate(a: Photo, b: Photo, d_phash: int, d_dhash: int) -> bool:
    """The pair rule (module docstring) for one pair."""
    return bool(accepted(a, np.array([b.moment]), np.array([b.has_subseconds]), np.array([d_phash]),
                         np.array([d_dhash]))[0])


def candidate_pairs(new_ids: np.ndarray, new_p: np.ndarray, new_d: np.ndarray, all_ids: np.ndarray,
                    all_p: np.ndarray, all_d: np.ndarray, *, block: int = 64) -> list[tuple[int, int, int, int]]:
    """Pairs (a < b, d_phash, d_dhash) between new hashes and all hashes within the widest
    thresholds: a vectorised XOR + popcount scan over everything (~1-3 ns per comparison), in
    blocks so the distance matrix stays small. Each pair is reported once. The reference the
    maintained index (:mod:`photobox.duplicates.index`) is tested and benchmarked against."""
    out: set[tuple[int, int, int, int]] = set()
    max_sum = max(SAME_MOMENT[1], UNKNOWN_MOMENT[1])
    for start in range(0, len(new_ids), block):
        ids = new_ids[start:start + block]
        dp = hamming(new_p[start:start + block, None], all_p[None, :])
        rows, cols = np.nonzero(dp <= MAX_PHASH)
        if not len(rows):
            continue
        dd = hamming(new_d[start:start + block][rows], all_d[cols])
        for r, c, p, d in zip(rows.tolist(), cols.tolist(), dp[rows, cols].tolist(), dd.tolist()):
            a, b = int(ids[r]), int(all_ids[c])
            if a != b and p + d <= max_sum:
                out.add((min(a, b), max(a, b), int(p), int(d)))
    return sorted(out)


def group_pairs(pairs: Iterable[tuple[int, int, int]], cannot: Callable[[int, int], bool],
                key: Callable[[int], Hashable] | None = None) -> list[list[int]]:
    """Union-find over ``(a, b, distance)`` pairs, closest first, never joining two sets
    that hold a pair for which ``cannot(x, y)`` is true. Returns groups of two or more,
    each sorted, ordered by their smallest id.

    ``key(x)``, when given, says what ``cannot`` depends on (a photo's moment and the "not
    duplicates" decisions it is in): then only one member per key and set is checked, so
    joining thousands of look-alikes with one moment costs one check, not one per pair of
    members. Without it every pair of members across the two sets is checked."""
    key = key or (lambda x: x)
    parent: dict[int, int] = {}
    kinds: dict[int, dict[Hashable, int]] = {}  # set root → {key: one member with it}
    members: dict[int, list[int]] = {}

    def find(x: int) -> int:
        if x not in parent:
            parent[x] = x
            members[x] = [x]
            kinds[x] = {key(x): x}
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in sorted(pairs, key=lambda p: (p[2], p[0], p[1])):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if any(cannot(x, y) for x in kinds[ra].values() for y in kinds[rb].values()):
            continue
        if len(members[ra]) < len(members[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        members[ra].extend(members.pop(rb))
        for k, x in kinds.pop(rb).items():
            kinds[ra].setdefault(k, x)
    return sorted((sorted(m) for m in members.values() if len(m) > 1), key=lambda g: g[0])


_CAMERA_FORMATS = {"image/heic": 2, "image/heif": 2, "image/x-adobe-dng": 2, "image/jpeg": 1}


def keeper_order(row: dict) -> tuple:
    """Sort key: the best copy to keep comes first. Most pixels; then an original from a
    camera (capture time and make written by it) over a re-encode; a camera format (HEIC or
    RAW, then JPEG) over a conversion (PNG, WebP); more metadata (GPS, description,
    favourite); the oldest file (a conversion is made after its original); a bigger file."""
    pixels = (row.get("width") or 0) * (row.get("height") or 0)
    original = int(row.get("taken_at_source") in TRUSTED_TIME_SOURCES) + int(bool(row.get("make")))
    mime = row.get("mime") or ""
    camera_format = _CAMERA_FORMATS.get(mime, 2 if mime.startswith("image/x-") else 0)  # image/x-*: RAW formats
    metadata = int(row.get("latitude") is not None) + int(bool(row.get("description"))) + int(bool(row.get("favorite")))
    return (-pixels, -original, -camera_format, -metadata, row.get("mtime") or 0, -(row.get("size") or 0),
            row.get("created_at") or 0, row["id"])
