"""Fast exact nearest faces: an int8 RAM mirror of ``face_vectors_<dim>`` with exact re-rank.

Why: a sqlite-vec vec0 KNN is a brute-force float32 scan of the whole table, and
:func:`~photobox.people.faces_job.place_face` runs one per new face. ``scripts/bench faces``
(same run, 128-d, k=65, 2-core x86 shared with other work): at 100k faces vec0 23 ms a query,
the mirror 3.5 ms, a whole ``place_face`` 22 → 4 ms; at 1M (a busier run) 422 → 175 ms a
query and 794 → 156 ms a ``place_face``. Memory: ``dim + 12`` bytes a face.
int8 was measured against float16 (numpy has no fast float16 path: 12x slower than int8 at
100k) and float32 (as fast or faster on x86, 3.7x the RAM, and a Pi lacks memory bandwidth). This module keeps, per process, database file and dimension, the
face vectors as int8 codes with one scale each (the CLIP search's quantizer, scan kernels and
candidate margin from :mod:`photobox.search.vectors`, shared, not copied): ``dim + 12`` bytes
a face (14 MB per 100k 128-d SFace faces, 52 MB per 100k 512-d). A query scores every row,
keeps those whose exact score could still be in the top ``k`` given the quantization error,
and re-ranks them with their float32 vectors read back from the vec0 table, so the answer is
the vec0 answer: the same distances bit for bit (:func:`vec0_cosine_distance`) and the same
ids, except that faces at exactly the same distance (duplicate photos) come by id, where vec0's
order among them is an accident of its chunked top-k.

**Staying exact.** The mirror only ever ingests *committed* rows, read through its own
read-only connection, and catches up by id: faces only get larger ids, so one b-tree probe
(``max(rowid)`` of vec0's ``<table>_rowids`` shadow table) tells whether there is anything
new. A query also scores exactly every row the *caller* sees above the mirror's newest id
(e.g. the face just inserted, uncommitted, in the faces job's transaction). A candidate the
caller cannot read back was deleted (dropped from the mirror, and the query asked again) or
is newer than the caller's snapshot (that query goes to vec0). A deleted row that is not a
candidate cannot change the answer. Deleting rows and inserting the same id again with
another vector would go unseen, so code that deletes from the table says so:
:func:`~photobox.people.faces_job.recluster_all` (vectors of faces that are gone) calls
:func:`forget` after committing, and the faces job, which must drop such a leftover vector
when the id of a deleted face is given to a new one, calls :func:`replaced`. No code
updates a stored vector.

**Bounded memory.** Mirrors of all tables together stay under :func:`set_memory_limit`
(default 15% of physical memory); a table that does not fit is queried with vec0 (exact,
slow). :func:`set_enabled` turns the mirror off (benchmarks, comparisons).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

import apsw
import numpy as np

from photobox.db.connection import connect
from photobox.search.vectors import _get_kernel, _pick, _quantize, ram_share

__all__ = ["clear", "forget", "knn", "mirror_stats", "replaced", "set_enabled", "set_memory_limit", "vec0_cosine_distance",
           "warm"]

log = logging.getLogger(__name__)

#: Read new committed vectors in batches of this many ids.
_BATCH = 500
#: A table with more faces gets its mirror built in a background thread (vec0 answers
#: meanwhile) instead of making one query wait (~0.5 s a 100k faces here, more on a Pi).
SYNC_BUILD_MAX = 200_000
#: Mirrors kept at most (each holds a read-only connection); the least recently used goes.
MAX_MIRRORS = 4

_lock = threading.Lock()
_mirrors: dict[tuple[str, int], _FaceMirror] = {}
_too_big: set[tuple[str, int]] = set()
_building: set[tuple[str, int]] = set()
_suspects: dict[tuple[str, int], set[int]] = {}  # ids whose vector was replaced (see replaced())
_enabled = True
_memory_limit: int | None = None


def set_enabled(on: bool) -> None:
    """Use the mirror (default) or always the vec0 query (for benchmarks and comparisons)."""
    global _enabled
    _enabled = bool(on)


def set_memory_limit(nbytes: int | None) -> None:
    """Cap the RAM of all face mirrors together (None: 15% of physical memory)."""
    global _memory_limit
    with _lock:
        _memory_limit = None if nbytes is None else int(nbytes)
        _too_big.clear()


def _limit() -> int:
    return _memory_limit if _memory_limit is not None else ram_share(0.15, 256 << 20)


def clear() -> None:
    """Forget every face mirror (rebuilt on the next query); for tests and benchmarks."""
    with _lock:
        for m in _mirrors.values():
            m.close()
        _mirrors.clear()
        _too_big.clear()
        _suspects.clear()


def forget(conn: apsw.Connection, dim: int) -> None:
    """Drop the mirror of ``face_vectors_<dim>``: call after deleting rows from it."""
    if not conn.filename:
        return
    key = (os.path.realpath(conn.filename), int(dim))
    with _lock:
        m = _mirrors.pop(key, None)
        _too_big.discard(key)
    if m is not None:
        m.close()


def warm(conn: apsw.Connection, dim: int, timeout: float = 600.0) -> bool:
    """Build the mirror of ``face_vectors_<dim>`` now and wait for it (benchmarks, startup);
    False if it cannot be had (off, too big, no table)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _mirror(conn, dim) is not None:
            return True
        key = (os.path.realpath(conn.filename), int(dim)) if conn.filename else None
        with _lock:
            if key not in _building:
                return False
        time.sleep(0.02)
    return False


def replaced(conn: apsw.Connection, dim: int, face_ids: list[int]) -> None:
    """Say that these ids of ``face_vectors_<dim>`` were deleted and inserted again with another
    vector (in the caller's transaction, committed or not): a mirror cannot see that by ids, so
    they are scored from SQLite in every query of this process from now on (a handful of ids:
    only a face id reused after its photo was deleted does this)."""
    if not conn.filename:
        return
    key = (os.path.realpath(conn.filename), int(dim))
    with _lock:
        _suspects.setdefault(key, set()).update(int(i) for i in face_ids)


def mirror_stats() -> list[dict[str, Any]]:
    """Faces, bytes and build time of each mirror of this process (benchmarks, status)."""
    with _lock:
        return [{"path": k[0], "dim": k[1], "faces": m.n, "bytes": m.nbytes,
                 "build_seconds": round(m.build_seconds, 3)} for k, m in _mirrors.items()]


def _table(dim: int) -> str:
    return f"face_vectors_{int(dim)}"


def _top(conn: apsw.Connection, table: str) -> int:
    """The largest face id in the table as ``conn`` sees it (vec0's rowids shadow table: one b-tree probe)."""
    return int(conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}_rowids").fetchone()[0])


def _above(conn: apsw.Connection, table: str, top: int) -> list[int]:
    """Face ids above ``top`` as ``conn`` sees the table (a range of the shadow table's b-tree)."""
    return [i for (i,) in conn.execute(f"SELECT rowid FROM {table}_rowids WHERE rowid > ? ORDER BY rowid", (top,))]


def _read(conn: apsw.Connection, table: str, ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 vectors of ``ids`` (one indexed vec0 read each); ids without a row are left out."""
    sql = f"SELECT embedding FROM {table} WHERE face_id = ?"
    found: list[int] = []
    blobs: list[bytes] = []
    for face_id in ids:
        row = conn.execute(sql, (int(face_id),)).fetchone()
        if row is not None:
            found.append(int(face_id))
            blobs.append(row[0])
    mat = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(found), dim)
    return np.asarray(found, dtype=np.int64), mat


def vec0_cosine_distance(mat: np.ndarray, q: np.ndarray) -> np.ndarray:
    """sqlite-vec's cosine distance of each row of ``mat`` to ``q``, computed as vec0 does:
    float32 products summed one after another in float32 (``cumsum`` is sequential, unlike
    ``@`` or ``sum``), then ``1 - dot / (sqrt(|a|²) * sqrt(|b|²))`` in double, returned as
    float32. Bit-identical to vec0 on this x86 build (tests compare); a C compiler that fuses
    multiply-adds (e.g. on ARM) can differ in the last bit."""
    mat = np.asarray(mat, dtype=np.float32)
    q = np.asarray(q, dtype=np.float32).ravel()
    if not len(mat):
        return np.empty(0, dtype=np.float32)
    dot = np.cumsum(mat * q, axis=1, dtype=np.float32)[:, -1].astype(np.float64)
    a = np.cumsum(mat * mat, axis=1, dtype=np.float32)[:, -1].astype(np.float64)
    b = float(np.cumsum(q * q, dtype=np.float32)[-1])
    return (1.0 - dot / (np.sqrt(a) * np.sqrt(b))).astype(np.float32)


def _unit(mat: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1)
    norms[norms == 0] = 1
    return (mat / norms[:, None]).astype(np.float32)


class _FaceMirror:
    """int8 codes + scales + face ids of the committed rows of one vec0 table, dense rows."""

    def __init__(self, path: str, dim: int) -> None:
        self.path, self.dim, self.table = path, dim, _table(dim)
        self.lock = threading.Lock()
        self.reader = connect(path, readonly=True)
        self.n = 0
        self.top = 0  # the largest face id in the mirror
        self.ids = np.empty(0, dtype=np.int64)
        self.codes = np.empty((0, dim), dtype=np.int8)
        self.scales = np.empty(0, dtype=np.float32)
        self.build_seconds = 0.0
        self.used = time.monotonic()

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.codes.nbytes + self.scales.nbytes)

    @staticmethod
    def estimate(n: int, dim: int) -> int:
        return int(n * 1.02 + 1024) * (dim + 12)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()

    def _append(self, ids: np.ndarray, mat: np.ndarray) -> None:
        if not len(ids):
            return
        total = self.n + len(ids)
        if total > len(self.ids):
            cap = max(total, int(len(self.ids) * 1.25) + 1024)
            for name in ("ids", "codes", "scales"):
                old = getattr(self, name)
                new = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
                new[:self.n] = old[:self.n]
                setattr(self, name, new)
        codes, scales = _quantize(_unit(mat))
        self.ids[self.n:total], self.codes[self.n:total], self.scales[self.n:total] = ids, codes, scales
        self.n = total
        self.top = max(self.top, int(ids.max()))

    def sync(self) -> None:
        """Add the committed rows above the mirror's newest id (faces only get larger ids)."""
        with self.reader:  # one read snapshot
            if _top(self.reader, self.table) <= self.top:
                return
            new = _above(self.reader, self.table, self.top)
            for a in range(0, len(new), _BATCH):
                self._append(*_read(self.reader, self.table, new[a:a + _BATCH], self.dim))

    def drop_deleted(self, ids: list[int]) -> bool:
        """Remove those of ``ids`` that the committed table no longer has; False if some still exist
        (then the caller's view is not the committed one, e.g. an older snapshot)."""
        with self.reader:
            present, _ = _read(self.reader, self.table, ids, self.dim)
        gone = np.setdiff1d(np.asarray(ids, dtype=np.int64), present)
        if len(gone):
            keep = ~np.isin(self.ids[:self.n], gone)
            n = int(keep.sum())
            for name in ("ids", "codes", "scales"):
                arr = getattr(self, name)
                arr[:n] = arr[:self.n][keep]
            self.n = n
        return len(present) == 0

    def build(self) -> None:
        t0 = time.perf_counter()
        with self.reader:
            # Room for every face at once (ids are dense): no copies while growing.
            cap = int(_top(self.reader, self.table) * 1.02) + 1024
            self.ids = np.empty(cap, dtype=np.int64)
            self.codes = np.empty((cap, self.dim), dtype=np.int8)
            self.scales = np.empty(cap, dtype=np.float32)
            for blob_ids, mat in self._stream():
                self._append(blob_ids, mat)
        self.build_seconds = time.perf_counter() - t0

    def _stream(self):
        ids: list[int] = []
        blobs: list[bytes] = []
        for face_id, blob in self.reader.execute(f"SELECT face_id, embedding FROM {self.table}"):
            ids.append(face_id)
            blobs.append(blob)
            if len(ids) >= 8192:
                yield np.asarray(ids, np.int64), np.frombuffer(b"".join(blobs), np.float32).reshape(-1, self.dim)
                ids, blobs = [], []
        if ids:
            yield np.asarray(ids, np.int64), np.frombuffer(b"".join(blobs), np.float32).reshape(-1, self.dim)

    def candidates(self, q: np.ndarray, k: int) -> np.ndarray:
        """Face ids whose exact cosine similarity to unit ``q`` could be in the top ``k``."""
        if self.n == 0:
            return np.empty(0, dtype=np.int64)
        approx, step_q = _get_kernel(self.dim).scores(self.codes, self.n, None, q)
        scales = self.scales[:self.n]
        approx *= scales
        return self.ids[_pick(approx, scales, step_q, k, None)]



def _mirror(conn: apsw.Connection, dim: int) -> _FaceMirror | None:
    """The up-to-date (committed rows) mirror of the table, built if needed; None: use vec0
    (off, over the memory limit, or a big table's mirror still being built in a thread)."""
    if not _enabled or not conn.filename:
        return None
    key = (os.path.realpath(conn.filename), int(dim))
    with _lock:
        if key in _too_big or key in _building:
            return None
        mirror = _mirrors.get(key)
        if mirror is None:
            try:
                # Face ids are dense enough: the largest bounds the count without scanning.
                top = _top(conn, _table(dim))
            except apsw.SQLError:
                return None  # no such table (yet)
            # Make room: drop the least recently used mirrors (other databases, other sizes).
            need = _FaceMirror.estimate(top, dim)
            others = sorted(_mirrors.values(), key=lambda m: m.used)
            while others and (len(others) >= MAX_MIRRORS or sum(m.nbytes for m in others) + need > _limit()):
                victim = others.pop(0)
                _mirrors.pop((victim.path, victim.dim), None)
                victim.close()
            used = sum(m.nbytes for m in others)
            if used + need > _limit():
                _too_big.add(key)
                log.warning("face vectors of %s (%d-d) do not fit the memory limit: nearest faces come from "
                            "sqlite-vec, which is slower", key[0], dim)
                return None
            _building.add(key)
    if mirror is None:
        if top > SYNC_BUILD_MAX:
            threading.Thread(target=_build, args=(key,), daemon=True, name=f"face-mirror-{dim}").start()
            return None
        return _build(key)
    mirror.used = time.monotonic()
    with mirror.lock:
        try:
            mirror.sync()
        except apsw.Error:  # the table went away, or the mirror was evicted meanwhile
            mirror = None
    if mirror is not None and mirror.nbytes <= _limit():
        return mirror
    forget(conn, dim)
    if mirror is not None:
        with _lock:
            _too_big.add(key)  # grew past the memory limit
    return None


def _build(key: tuple[str, int]) -> _FaceMirror | None:
    """Read the committed table into a new mirror and publish it (None if it cannot be read)."""
    mirror = None
    try:
        mirror = _FaceMirror(key[0], key[1])
        mirror.build()
        # The scan kernel is chosen now, not in a query. Not timed on these rows: the choice is
        # the process's (CLIP search's too), which a face table should not flip.
        _get_kernel(mirror.dim)
    except apsw.Error:  # e.g. the table is created in a transaction not yet committed
        if mirror is not None:
            mirror.close()
        mirror = None
    except Exception:
        log.exception("building the face vector mirror of %s failed", key[0])
        mirror = None
    with _lock:
        _building.discard(key)
        if mirror is not None:
            _mirrors[key] = mirror
    return mirror


def knn(conn: apsw.Connection, dim: int, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``k`` nearest faces of ``query`` as ``conn`` sees the table: (ids, cosine distances),
    nearest first, like vec0's ``embedding MATCH ? AND k = ?``. None: ask vec0 instead (mirror
    off or too big, or the caller's view differs from the mirror other than by newer rows)."""
    mirror = _mirror(conn, dim)
    if mirror is None:
        return None
    table = _table(dim)
    q = np.asarray(query, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(q))
    if norm == 0 or not np.isfinite(norm):
        return None
    with _lock:
        suspects = sorted(_suspects.get((mirror.path, mirror.dim), ()))
    for _attempt in range(2):
        with mirror.lock:
            # Rows the mirror has not got (yet): the caller's own uncommitted faces, or newer
            # commits; and ids whose vector was replaced (:func:`replaced`), scored as they are now.
            extra = sorted(set(_above(conn, table, mirror.top)).union(suspects))
            # k more per suspect: the mirror's old vector of a suspect must not take a place.
            cand = mirror.candidates(q / norm, int(k) + len(suspects))
        if suspects:
            cand = np.setdiff1d(cand, np.asarray(suspects, dtype=np.int64))
        ids, mat = _read(conn, table, cand.tolist(), dim)
        if len(ids) == len(cand):
            more, more_mat = _read(conn, table, extra, dim)  # those the caller does not see are just left out
            ids, mat = np.concatenate([ids, more]), np.concatenate([mat, more_mat])
            break
        # Some candidates are gone for the caller: deleted (drop them from the mirror, ask
        # again), or not yet visible to its older snapshot (vec0 answers this one).
        missing = np.setdiff1d(cand, ids).tolist()
        with mirror.lock:
            try:
                if not mirror.drop_deleted(missing):
                    return None
            except apsw.Error:  # evicted meanwhile
                return None
    else:
        return None
    if not len(ids):
        return ids, np.empty(0, dtype=np.float32)
    dist = vec0_cosine_distance(mat, q)
    order = np.lexsort((ids, dist))[:int(k)]  # exact ties (duplicate photos): by id
    return ids[order], dist[order]
