"""Fast exact nearest faces: an int8 RAM mirror of ``face_vectors_<dim>`` with exact re-rank.

Why: a sqlite-vec vec0 KNN is a brute-force float32 scan of the whole table, and
:func:`~photobox.people.faces_job.place_face` runs one per new face; the README's "Nearest
faces in RAM" has the measurements. This module keeps, per process, database file and
dimension, the face vectors as a :class:`photobox.vectors.Mirror` (int8 codes with one scale
each, the same index, scan kernels and candidate margin as the CLIP search): ``dim + 16``
bytes a face. A query scores every row, keeps those whose exact score could still be in the
top ``k`` given the quantization error, and re-ranks them with their float32 vectors read
back from the vec0 table, so the answer is the vec0 answer: the same distances bit for bit
(:func:`vec0_cosine_distance`) and the same ids, except that faces at exactly the same
distance (duplicate photos) come by id, where vec0's order among them is an accident of its
chunked top-k.

**Staying exact.** The mirror only ever ingests *committed* rows, read through its own
read-only connection, and catches up by id: faces only get larger ids, so the mirror's
``version`` is the largest id it read, and one b-tree probe (``max(rowid)`` of vec0's
``<table>_rowids`` shadow table) tells whether there is anything new. A query also scores
exactly every row the *caller* sees above that id (e.g. the face just inserted, uncommitted,
in the faces job's transaction). A candidate the caller cannot read back was deleted (dropped
from the mirror, and the query asked again) or is newer than the caller's snapshot (that
query goes to vec0). A deleted row that is not a candidate cannot change the answer. Deleting
rows and inserting the same id again with another vector would go unseen, so code that
deletes from the table says so: :func:`~photobox.people.faces_job.recluster_all` (vectors of
faces that are gone) calls :func:`forget` after committing, and the faces job, which must
drop such a leftover vector when the id of a deleted face is given to a new one, calls
:func:`replaced`. No code updates a stored vector.

**Bounded memory.** Face mirrors share the memory budget of all vector mirrors
(:func:`photobox.vectors.set_memory_limit`); a table that does not fit is queried with vec0
(exact, slow). :func:`set_enabled` turns the mirror off (benchmarks, comparisons).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import apsw
import numpy as np

from photobox.db.connection import connect
from photobox.vectors import Mirror, registry
from photobox.vectors.kernels import get_kernel
from photobox.vectors.registry import MAX_MIRRORS, clear_mirrors, set_memory_limit
from photobox.vectors.rows import batches, read_by_id

__all__ = ["MAX_MIRRORS", "clear", "forget", "knn", "mirror_stats", "replaced", "set_enabled", "set_memory_limit",
           "vec0_cosine_distance", "warm"]

log = logging.getLogger(__name__)

#: Read new committed vectors in batches of this many ids.
_BATCH = 500
#: A table with more faces gets its mirror built in a background thread (vec0 answers
#: meanwhile) instead of making one query wait (~0.5 s a 100k faces here, more on a Pi).
SYNC_BUILD_MAX = 200_000
_KIND = "faces"

_lock = threading.Lock()
_suspects: dict[tuple[str, int], set[int]] = {}  # ids whose vector was replaced (see replaced())
_enabled = True


def set_enabled(on: bool) -> None:
    """Use the mirror (default) or always the vec0 query (for benchmarks and comparisons)."""
    global _enabled
    _enabled = bool(on)


def clear() -> None:
    """Forget every mirror (:func:`photobox.vectors.clear_mirrors`) and the replaced ids; for tests and benchmarks."""
    clear_mirrors()
    with _lock:
        _suspects.clear()


def _key(conn: apsw.Connection, dim: int) -> tuple[str, str, int] | None:
    # An unnamed (temporary) database has no committed rows another connection could read.
    return (_KIND, os.path.realpath(conn.filename), int(dim)) if conn.filename else None


def forget(conn: apsw.Connection, dim: int) -> None:
    """Drop the mirror of ``face_vectors_<dim>``: call after deleting rows from it."""
    key = _key(conn, dim)
    if key is not None:
        registry.forget(*key)


def warm(conn: apsw.Connection, dim: int, timeout: float = 600.0) -> bool:
    """Build the mirror of ``face_vectors_<dim>`` now and wait for it (benchmarks, startup);
    False if it cannot be had (off, too big, no table)."""
    key = _key(conn, dim)
    return key is not None and registry.wait_for(key, lambda: _mirror(conn, dim), timeout) is not None


def replaced(conn: apsw.Connection, dim: int, face_ids: list[int]) -> None:
    """Say that these ids of ``face_vectors_<dim>`` were deleted and inserted again with another
    vector (in the caller's transaction, committed or not): a mirror cannot see that by ids, so
    they are scored from SQLite in every query of this process from now on (a handful of ids:
    only a face id reused after its photo was deleted does this)."""
    key = _key(conn, dim)
    if key is None:
        return
    with _lock:
        _suspects.setdefault(key[1:], set()).update(int(i) for i in face_ids)


def mirror_stats() -> list[dict[str, Any]]:
    """Faces, bytes and build time of each face mirror of this process (benchmarks, status)."""
    return [{"path": s["path"], "dim": s["dim"], "faces": s["vectors"], "bytes": s["bytes"],
             "build_seconds": s["build_seconds"]} for s in registry.mirror_stats(_KIND) if s["state"] == "ready"]


def _table(dim: int) -> str:
    return f"face_vectors_{int(dim)}"


def _top(conn: apsw.Connection, table: str) -> int:
    """The largest face id in the table as ``conn`` sees it (vec0's rowids shadow table: one b-tree probe)."""
    return int(conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}_rowids").fetchone()[0])


def _above(conn: apsw.Connection, table: str, top: int) -> list[int]:
    """Face ids above ``top`` as ``conn`` sees the table (a range of the shadow table's b-tree)."""
    return [i for (i,) in conn.execute(f"SELECT rowid FROM {table}_rowids WHERE rowid > ? ORDER BY rowid", (top,))]


def _read(conn: apsw.Connection, table: str, ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 vectors of ``ids`` (one indexed read each); ids without a row are left out."""
    return read_by_id(conn, f"SELECT embedding FROM {table} WHERE face_id = ?", ids, dim)


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


class _FaceMirror(Mirror):
    """The committed rows of one vec0 face table in RAM; ``version`` is the largest face id read."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        super().__init__(key, key[2])
        self.table = _table(self.dim)
        self.reader = connect(key[1], readonly=True)
        self.version = 0

    def close(self) -> None:
        try:
            self.reader.close()
        except apsw.Error:
            pass

    def _append(self, ids: np.ndarray, mat: np.ndarray) -> None:
        if len(ids):
            self.put(ids, _unit(mat))
            self.version = max(self.version, int(ids.max()))

    def build(self) -> None:
        """Read the committed table (before the mirror is published)."""
        t0 = time.perf_counter()
        with self.reader:  # one read snapshot
            # Room for every face at once (ids are dense): no copies while growing.
            top = _top(self.reader, self.table)
            self.reset(top, top)
            for ids, mat in batches(self.reader.execute(f"SELECT face_id, embedding FROM {self.table}"), self.dim):
                self._append(ids, mat)
        self.build_seconds = time.perf_counter() - t0

    def sync(self) -> None:
        """Add the committed rows above the mirror's newest id (faces only get larger ids).
        The caller holds the exclusive lock."""
        with self.reader:  # one read snapshot
            if _top(self.reader, self.table) <= self.version:
                return
            new = _above(self.reader, self.table, self.version)
            for a in range(0, len(new), _BATCH):
                self._append(*_read(self.reader, self.table, new[a:a + _BATCH], self.dim))

    def drop_deleted(self, ids: list[int]) -> bool:
        """Remove those of ``ids`` that the committed table no longer has; False if some still exist
        (then the caller's view is not the committed one, e.g. an older snapshot). The caller
        holds the exclusive lock."""
        with self.reader:
            present, _ = _read(self.reader, self.table, ids, self.dim)
        self.remove(np.setdiff1d(np.asarray(ids, dtype=np.int64), present).tolist())
        return len(present) == 0


def _mirror(conn: apsw.Connection, dim: int) -> _FaceMirror | None:
    """The up-to-date (committed rows) mirror of the table, built if needed; None: use vec0
    (off, over the memory budget, or a big table's mirror still being built in a thread)."""
    key = _key(conn, dim)
    if not _enabled or key is None or registry.too_big(key) or registry.building(key):
        return None
    mirror = registry.get(key)
    if mirror is None:
        try:
            # Face ids are dense enough: the largest bounds the count without scanning.
            top = _top(conn, _table(dim))
        except apsw.SQLError:
            return None  # no such table (yet)
        if not registry.admit(key, Mirror.estimate(top, int(dim), top)):
            return None
        return registry.build(key, lambda: _build(key), background=top > SYNC_BUILD_MAX)
    try:
        with mirror.lock.exclusive():
            mirror.sync()
    except apsw.Error:  # the table went away, or the mirror was evicted meanwhile
        registry.forget(*key)
        return None
    return mirror if registry.refit(key) else None  # refit: it may have grown past the budget


def _build(key: tuple[str, str, int]) -> _FaceMirror | None:
    """Read the committed table into a new mirror (None if it cannot be read; the registry publishes it)."""
    mirror = None
    try:
        mirror = _FaceMirror(key)
        mirror.build()
        # The scan kernel is chosen now, not in a query. Not timed on these rows: the choice is
        # the process's (CLIP search's too), which a face table should not flip.
        get_kernel(mirror.dim)
        return mirror
    except apsw.Error:  # e.g. the table is created in a transaction not yet committed
        pass
    except Exception:
        log.exception("building the face vector mirror of %s failed", key[1])
    if mirror is not None:
        mirror.close()
    return None


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
        suspects = sorted(_suspects.get(mirror.key[1:], ()))
    for _attempt in range(2):
        with mirror.lock.shared():
            # Rows the mirror has not got (yet): the caller's own uncommitted faces, or newer
            # commits; and ids whose vector was replaced (:func:`replaced`), scored as they are now.
            extra = sorted(set(_above(conn, table, mirror.version)).union(suspects))
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
        try:
            with mirror.lock.exclusive():
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
