"""CLIP embeddings: durable in SQLite, searched exactly within any filter through a RAM mirror.

**Storage** (the source of truth: in the database file, so in its backups).
``embedding_spaces`` has one row per model's embedding space: ``building`` → ``active`` →
``retired``. Each space keeps its float32 vectors in a sqlite-vec table ``vec_space_<id>``,
created at runtime because vec0 declares the dimension (``float[512]``) and only the model
knows it; the name holds the integer id and nothing else. ``chunk_size=32``, not vec0's
default 1024: vec0 keeps a chunk's vectors in one blob, and reading one vector out of a
2 MB blob walks its overflow pages (53 µs a read, 30 µs a row in a full scan); 64 KB chunks
read a vector in 7.5 µs and scan 10x faster, in the same file size (~2.1 KB a 512-d vector).
``embedding_entries`` records which asset has a vector in which space and the space version
of its last change, so :func:`missing_assets` and :func:`count` never touch the vector table
and a mirror catches up on just what changed. A trigger marks the entries of a deleted asset
row; :func:`sweep` then frees its vectors (a trigger cannot name a per-space table).

**Search.** sqlite-vec's float32 brute force takes ~0.8 s at 1M vectors. Instead each process
keeps a mirror of a space in RAM: the vectors as int8 with one scale each, their asset ids
and an id → row array (528 B a 512-d vector: 55 MB at 100k, 554 MB at 1M). A query scores
every *admissible* row (the filter applies before ranking, so a filter matching 0.5% of the
library still gets its true top-k), keeps each row whose score could still reach the top k
given the quantization error (k plus 10-25% in practice), and re-ranks those with their
float32 vectors read back from SQLite: results and scores are exact float32 cosine
similarities. ``scripts/bench_search.py`` measured the alternatives (median, 2-core x86):

=====================  ======  ======  ===============  ==========
strategy (no filter)   100k    1M      memory at 1M     recall@50
=====================  ======  ======  ===============  ==========
int8 mirror (this)     12 ms   90 ms   554 MB RAM       1.000
numpy float32 matrix   13 ms   73 ms   2048 MB RAM      (reference)
vec0 float32 brute     75 ms   800 ms  page cache       1.000
vec0 int8, re-rank     89 ms   -       +540 MB on disk  1.000
vec0 bit, re-rank      158 ms  -       +90 MB on disk   0.49-0.98
=====================  ======  ======  ===============  ==========

With a 1% filter the mirror takes 1 ms at 100k and 4 ms at 1M (it scans only those rows).
A float32 matrix is as fast on that x86 but needs 4x the RAM (2 GB at 1M: more than most
Pis have) and 4x the memory bandwidth, which is what a Pi lacks most.

The scan converts int8 blocks that fit in cache to float32 for BLAS, over a few threads
(numpy), or runs onnxruntime's int8 MatMulInteger (dot-product instructions on the Pi 5);
whichever is faster on this CPU is picked by timing (again on a big mirror's own rows).

**The mirror is a cache.** It is built lazily from SQLite (by :func:`warm`, the first search,
or in a background thread for a big space, searched in SQLite meanwhile), follows every
committed write of any process through the space's version counter, and is dropped when its
space is retired or memory runs short (:func:`set_memory_limit`; a space that does not fit
is searched in SQLite). Searches run in reader threads and share a mirror under a
readers-writer lock; whichever first sees a newer version applies the changes. Writers never
touch it: they only write SQL in their transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import apsw
import numpy as np

from photobox.db.connection import connect
from photobox.db.database import Database
from photobox.db.sql import id_chunks

__all__ = [
    "IncompleteSpaceError", "Space", "SpaceUnavailable", "activate", "active_space", "building_space", "clear_mirrors",
    "count", "create_space", "delete", "ensure_space", "get_space", "get_vector", "mirror_stats", "missing_assets",
    "more_like", "search", "set_kernel", "set_memory_limit", "sweep", "upsert", "upsert_many", "warm",
]

log = logging.getLogger(__name__)

#: Vectors per vec0 chunk (see the module docstring for why not the default 1024).
CHUNK_SIZE = 32
#: vec0 refuses a KNN query with k above this; only the no-mirror fallback is limited by it.
VEC0_MAX_K = 4096
#: A candidate is re-ranked while its int8 score, plus Z standard deviations of the
#: quantization error, could still beat the k-th best score minus the same margin.
Z = 4.0
#: Ids at or above this are looked up through a dict instead of the dense id → row array.
DENSE_IDS = 1 << 26
#: A space with more vectors gets its mirror built in a background thread (searches ask
#: SQLite meanwhile) instead of making the first search wait (~6 s at 1M on x86, more on a Pi).
SYNC_BUILD_MAX = 50_000
#: More changes than this (or a quarter of the mirror) since a mirror's version: rebuild it.
SYNC_MAX_CHANGES = 20_000
_NO_ID = np.iinfo(np.int64).max


class SpaceUnavailable(LookupError):
    """The embedding space does not exist or was retired (its vectors are gone)."""


class IncompleteSpaceError(RuntimeError):
    """A space was to be activated while some assets still have no vector in it."""


@dataclass(frozen=True, slots=True)
class Space:
    id: int
    model: str
    dim: int
    state: str
    version: int
    created_at: float
    activated_at: float | None

    @property
    def table(self) -> str:
        return _table(self.id)


def _table(space_id: int) -> str:
    # The only identifier ever built from data: an integer id, checked as one.
    return f"vec_space_{int(space_id)}"


_SPACE_COLUMNS = "id, model, dim, state, version, created_at, activated_at"


# -- spaces ----------------------------------------------------------------------------


def get_space(conn: apsw.Connection, space_id: int) -> Space | None:
    """The space with this id, whatever its state."""
    row = conn.execute(f"SELECT {_SPACE_COLUMNS} FROM embedding_spaces WHERE id = ?", (int(space_id),)).fetchone()
    return Space(*row) if row else None


def active_space(conn: apsw.Connection) -> Space | None:
    """The space searches use, if any."""
    row = conn.execute(f"SELECT {_SPACE_COLUMNS} FROM embedding_spaces WHERE state = 'active'").fetchone()
    return Space(*row) if row else None


def building_space(conn: apsw.Connection) -> Space | None:
    """The space being filled for a new model, if any (searches ignore it until activated)."""
    row = conn.execute(f"SELECT {_SPACE_COLUMNS} FROM embedding_spaces WHERE state = 'building'").fetchone()
    return Space(*row) if row else None


def create_space(conn: apsw.Connection, model: str, dim: int, *, now: float | None = None) -> int:
    """Start a ``building`` space for ``model`` and create its vector table; return its id.

    A space already building (for an earlier model choice) is abandoned: retired and its
    vectors dropped. The active space, if any, keeps serving searches until :func:`activate`.
    Call inside a write transaction.
    """
    dim = int(dim)
    if not 1 <= dim <= 8192:
        raise ValueError(f"embedding dimension {dim} out of range")
    if not model:
        raise ValueError("model must be named")
    now = time.time() if now is None else now
    with conn:  # a savepoint: the row and its table exist together or not at all
        previous = building_space(conn)
        if previous is not None:
            _retire(conn, previous.id, now)
        conn.execute("INSERT INTO embedding_spaces (model, dim, state, created_at) VALUES (?, ?, 'building', ?)",
                     (model, dim, now))
        space_id = conn.last_insert_rowid()
        conn.execute(f"CREATE VIRTUAL TABLE {_table(space_id)} USING vec0(asset_id INTEGER PRIMARY KEY, "
                     f"embedding float[{dim}] distance_metric=cosine, chunk_size={CHUNK_SIZE})")
    return space_id


def ensure_space(conn: apsw.Connection, model: str, dim: int, *, now: float | None = None) -> Space:
    """The active or building space of ``model`` (same dimension), creating a building one if neither is."""
    for space in (active_space(conn), building_space(conn)):
        if space is not None and space.model == model and space.dim == int(dim):
            return space
    space = get_space(conn, create_space(conn, model, dim, now=now))
    assert space is not None
    return space


def activate(conn: apsw.Connection, space_id: int, *, force: bool = False, now: float | None = None) -> None:
    """Make a building space the one searches use; retire the previous one and drop its vectors.

    Args:
        conn: the writer, inside a write transaction.
        space_id: a ``building`` space (an already active one is left alone).
        force: activate even if :func:`missing_assets` is not empty (e.g. the very first
            space, so search works while the library is still being embedded).

    Raises:
        SpaceUnavailable: no such space, or it was retired.
        IncompleteSpaceError: assets still lack a vector and ``force`` is false.
    """
    now = time.time() if now is None else now
    with conn:
        space = _space_or_raise(conn, space_id)
        if space.state == "active":
            return
        if not force and missing_assets(conn, space.id, 1):
            raise IncompleteSpaceError(f"space {space.id} ({space.model}) still has assets without a vector")
        old = active_space(conn)
        if old is not None:
            _retire(conn, old.id, now)  # first: at most one space may be active
        conn.execute("UPDATE embedding_spaces SET state = 'active', activated_at = ? WHERE id = ?", (now, space.id))


def _retire(conn: apsw.Connection, space_id: int, now: float) -> None:
    conn.execute("UPDATE embedding_spaces SET state = 'retired', retired_at = ?, version = version + 1 WHERE id = ?",
                  (now, space_id))
    conn.execute(f"DROP TABLE IF EXISTS {_table(space_id)}")
    conn.execute("DELETE FROM embedding_entries WHERE space_id = ?", (space_id,))
    _forget_mirror(conn, space_id)


def _space_or_raise(conn: apsw.Connection, space_id: int) -> Space:
    space = get_space(conn, space_id)
    if space is None or space.state == "retired":
        raise SpaceUnavailable(f"embedding space {space_id} {'was retired' if space else 'does not exist'}")
    return space


# -- writes ----------------------------------------------------------------------------


def _unit_rows(vectors: Any, dim: int) -> np.ndarray:
    """Vectors as float32 rows of length ``dim``, L2-normalised so a dot product is the cosine."""
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat[None, :]
    if mat.ndim != 2 or mat.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {np.shape(vectors)}")
    norms = np.linalg.norm(mat, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embedding vectors must be finite and non-zero")
    return np.ascontiguousarray(mat / norms[:, None], dtype=np.float32)


def _bump(conn: apsw.Connection, space_id: int) -> int:
    rows = list(conn.execute("UPDATE embedding_spaces SET version = version + 1 WHERE id = ? RETURNING version",
                             (space_id,)))
    return rows[0][0]


def upsert(conn: apsw.Connection, space_id: int, asset_id: int, vector: Any) -> None:
    """Store (or replace) the vector of one asset in a space. Call inside a write transaction."""
    upsert_many(conn, space_id, [asset_id], vector)


def upsert_many(conn: apsw.Connection, space_id: int, asset_ids: Sequence[int], vectors: Any) -> int:
    """Store (or replace) the vectors of many assets; ``vectors`` has one row per id.

    Vectors are L2-normalised on the way in. Searches see them once the transaction commits.
    Returns the number of vectors written.

    Raises:
        SpaceUnavailable: the space is retired or unknown.
        ValueError: wrong dimension, a zero or non-finite vector, or ids and rows differ in number.
    """
    ids = [int(i) for i in asset_ids]
    if not ids:
        return 0
    if min(ids) <= 0:
        raise ValueError("asset ids are positive")
    with conn:
        space = _space_or_raise(conn, space_id)
        mat = _unit_rows(vectors, space.dim)
        if len(mat) != len(ids):
            raise ValueError(f"{len(ids)} asset ids but {len(mat)} vectors")
        version = _bump(conn, space.id)
        update = f"UPDATE {space.table} SET embedding = ? WHERE asset_id = ?"
        insert = f"INSERT INTO {space.table} (asset_id, embedding) VALUES (?, ?)"
        for asset_id, row in zip(ids, mat):
            blob = row.tobytes()
            # vec0 has no UPSERT; an UPDATE of a missing rowid is one index probe.
            conn.execute(update, (blob, asset_id))
            if conn.changes() == 0:
                conn.execute(insert, (asset_id, blob))
        conn.executemany(
            "INSERT INTO embedding_entries (space_id, asset_id, version, present) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (space_id, asset_id) DO UPDATE SET version = excluded.version, present = 1",
            [(space.id, asset_id, version) for asset_id in ids])
    return len(ids)


def delete(conn: apsw.Connection, asset_id: int) -> None:
    """Remove an asset's vector from every space that has one. Call inside a write transaction.

    Deleting the asset row does this too (a trigger marks the entries, :func:`sweep` frees the
    vectors); call this when an asset stays but its embedding is no longer valid.
    """
    asset_id = int(asset_id)
    with conn:
        spaces = [s for (s,) in conn.execute(
            "SELECT e.space_id FROM embedding_entries e JOIN embedding_spaces s ON s.id = e.space_id "
            "WHERE e.asset_id = ? AND e.present != 0 AND s.state != 'retired'", (asset_id,))]
        for space_id in spaces:
            conn.execute(f"DELETE FROM {_table(space_id)} WHERE asset_id = ?", (asset_id,))
            version = _bump(conn, space_id)
            conn.execute("UPDATE embedding_entries SET present = 0, version = ? WHERE space_id = ? AND asset_id = ?",
                         (version, space_id, asset_id))


def sweep(conn: apsw.Connection, limit: int = 1000) -> int:
    """Free the vectors of deleted assets (marked by the delete trigger); return how many.

    Searches already ignore them, so this only reclaims space; the embedding job calls it
    now and then. Call inside a write transaction.
    """
    with conn:
        rows = conn.execute(
            "SELECT e.space_id, e.asset_id FROM embedding_entries e JOIN embedding_spaces s ON s.id = e.space_id "
            "WHERE e.present = -1 AND s.state != 'retired' LIMIT ?", (int(limit),)).fetchall()
        for space_id, asset_id in rows:
            conn.execute(f"DELETE FROM {_table(space_id)} WHERE asset_id = ?", (asset_id,))
            # The version stays: the mirror already dropped these when they became -1.
            conn.execute("UPDATE embedding_entries SET present = 0 WHERE space_id = ? AND asset_id = ?",
                         (space_id, asset_id))
    return len(rows)


# -- reads -----------------------------------------------------------------------------


def count(conn: apsw.Connection, space_id: int) -> int:
    """How many assets have a vector in the space."""
    return conn.execute("SELECT count(*) FROM embedding_entries WHERE space_id = ? AND present = 1",
                        (int(space_id),)).fetchone()[0]


def missing_assets(conn: apsw.Connection, space_id: int, limit: int, *, before_id: int | None = None) -> list[int]:
    """Assets that still need a vector in the space, newest id first (the embedding job's queue).

    Trashed assets and the video halves of Live Photos are skipped: search never shows them.
    Pass the last id of a batch as ``before_id`` to continue below it without re-reading
    everything above (ids whose embedding failed would otherwise come back first every time).
    """
    before = _NO_ID if before_id is None else int(before_id)
    return [i for (i,) in conn.execute(
        "SELECT a.id FROM assets a WHERE a.id < ? AND a.trashed_at IS NULL AND a.motion_of IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM embedding_entries e "
        "                WHERE e.space_id = ? AND e.asset_id = a.id AND e.present = 1) "
        "ORDER BY a.id DESC LIMIT ?", (before, int(space_id), int(limit)))]


def get_vector(conn: apsw.Connection, space_id: int, asset_id: int) -> np.ndarray | None:
    """The stored (unit) vector of an asset in a space, or None if it has none."""
    space = _space_or_raise(conn, space_id)
    if not _live(conn, space.id, [int(asset_id)]):
        return None
    found, mat = _read_vectors(conn, space, [int(asset_id)])
    return mat[0].copy() if found else None


def _live(conn: apsw.Connection, space_id: int, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for chunk, marks in id_chunks(list(ids)):
        out.update(i for (i,) in conn.execute(
            f"SELECT asset_id FROM embedding_entries WHERE space_id = ? AND present = 1 AND asset_id IN ({marks})",
            (space_id, *chunk)))
    return out


def _read_vectors(conn: apsw.Connection, space: Space, ids: Iterable[int]) -> tuple[list[int], np.ndarray]:
    """Float32 vectors of ``ids`` from SQLite (one indexed read each); ids without one are left out."""
    sql = f"SELECT embedding FROM {space.table} WHERE asset_id = ?"
    found: list[int] = []
    blobs: list[bytes] = []
    for asset_id in ids:
        row = conn.execute(sql, (int(asset_id),)).fetchone()
        if row is not None:
            found.append(int(asset_id))
            blobs.append(row[0])
    mat = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(found), space.dim)
    return found, mat


# -- search ----------------------------------------------------------------------------


def search(conn_or_db: apsw.Connection | Database, space_id: int, query: Any, k: int, *,
           allowed_ids: Iterable[int] | np.ndarray | None = None,
           min_score: float | None = None) -> list[tuple[int, float]]:
    """The ``k`` assets most similar to ``query``, best first, as (asset_id, cosine similarity).

    Args:
        conn_or_db: a reader (or a :class:`Database`, which lends one).
        space_id: the space to search (normally :func:`active_space`).
        query: the query embedding, same dimension as the space (normalised here).
        k: how many results at most.
        allowed_ids: only these assets may be returned (the SQL filter's result, any size).
            The ranking is exact among them: filtering happens before the top-k, not after.
        min_score: leave out results whose similarity is below this.

    Raises:
        SpaceUnavailable: the space does not exist or was retired.
        ValueError: the query has the wrong dimension or is zero.
    """
    if isinstance(conn_or_db, Database):
        with conn_or_db.reader() as conn:
            return search(conn, space_id, query, k, allowed_ids=allowed_ids, min_score=min_score)
    conn = conn_or_db
    space = _space_or_raise(conn, space_id)
    q = _unit_rows(query, space.dim)[0]
    k = int(k)
    allowed = None if allowed_ids is None else _id_array(allowed_ids)
    if k <= 0 or (allowed is not None and not len(allowed)):
        return []
    mirror = _mirror_for(conn, space)
    if mirror is None:
        return _search_sqlite(conn, space, q, k, allowed, min_score)
    candidates = mirror.candidates(q, k, allowed, min_score)
    return _rerank(conn, space, q, candidates, k, min_score)


def more_like(conn_or_db: apsw.Connection | Database, space_id: int, asset_id: int, k: int, *,
              allowed_ids: Iterable[int] | np.ndarray | None = None,
              min_score: float | None = None) -> list[tuple[int, float]]:
    """Assets most similar to ``asset_id`` (itself left out); empty if it has no vector yet."""
    if isinstance(conn_or_db, Database):
        with conn_or_db.reader() as conn:
            return more_like(conn, space_id, asset_id, k, allowed_ids=allowed_ids, min_score=min_score)
    vector = get_vector(conn_or_db, space_id, asset_id)
    if vector is None:
        return []
    hits = search(conn_or_db, space_id, vector, k + 1, allowed_ids=allowed_ids, min_score=min_score)
    return [(i, s) for i, s in hits if i != int(asset_id)][:k]


def _id_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64, copy=False).ravel()
    if not isinstance(ids, (list, tuple)):
        ids = list(ids)
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def _rerank(conn: apsw.Connection, space: Space, q: np.ndarray, candidates: np.ndarray, k: int,
            min_score: float | None) -> list[tuple[int, float]]:
    """Exact float32 scores of the candidates, read back from SQLite; best ``k`` first."""
    found, mat = _read_vectors(conn, space, candidates.tolist())
    return _best(np.asarray(found, dtype=np.int64), mat @ q, k, min_score)


def _best(ids: np.ndarray, scores: np.ndarray, k: int, min_score: float | None) -> list[tuple[int, float]]:
    if min_score is not None:
        keep = scores >= min_score
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]  # best score first; ties by id, so results are stable
    return [(int(ids[j]), float(scores[j])) for j in order]


def _search_sqlite(conn: apsw.Connection, space: Space, q: np.ndarray, k: int, allowed: np.ndarray | None,
                   min_score: float | None) -> list[tuple[int, float]]:
    """Exact search with sqlite-vec alone: no mirror (over the memory limit, or uncommitted writes).

    Slow on big libraries (a float32 scan of the whole table) and limited to ``VEC0_MAX_K`` results.
    """
    orphans = conn.execute("SELECT count(*) FROM embedding_entries WHERE space_id = ? AND present = -1",
                           (space.id,)).fetchone()[0]
    fetch = min(VEC0_MAX_K, k + orphans)
    if allowed is not None and len(allowed) <= VEC0_MAX_K:
        found, mat = _read_vectors(conn, space, np.unique(allowed).tolist())
        ids = np.asarray(found, dtype=np.int64)
    else:
        sql = f"SELECT asset_id, embedding FROM {space.table} WHERE embedding MATCH ? AND k = ?"
        params: tuple[Any, ...] = (q.tobytes(), fetch)
        if allowed is not None:
            sql += " AND asset_id IN (SELECT value FROM json_each(?))"
            params += (json.dumps(allowed.tolist()),)
        rows = conn.execute(sql, params).fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), space.dim)
    if orphans and len(ids):
        live = _live(conn, space.id, ids.tolist())
        keep = np.fromiter((i in live for i in ids.tolist()), dtype=bool, count=len(ids))
        ids, mat = ids[keep], mat[keep]
    return _best(ids, mat @ q, k, min_score)


# -- the RAM mirror --------------------------------------------------------------------


class _RWLock:
    """Many scans at once; applying changes waits for them and goes before new scans."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _quantize(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes with one scale per row: ``row ≈ codes * scale``.

    A per-row scale (the row's largest magnitude / 127) needs no training data and keeps
    each vector's own resolution; the error of a dot product is then about
    ``scale / sqrt(12)`` for a unit query, which the candidate margin accounts for.
    """
    peak = np.maximum(mat.max(axis=1), -mat.min(axis=1))
    scales = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    scaled = np.multiply(mat, (1 / scales)[:, None], dtype=np.float32)
    return np.rint(scaled, out=scaled).astype(np.int8), scales


class _NumpyKernel:
    """int8 rows → float32 in small blocks that stay in cache, then BLAS; blocks split over threads."""

    name = "numpy"
    _STEP = 256      # 256 rows x 512 float32 = 512 KB: fits the Pi's L2 cache
    _PARALLEL = 65536

    def scores(self, codes: np.ndarray, n: int, rows: np.ndarray | None, q: np.ndarray) -> tuple[np.ndarray, float]:
        """``codes[r] · q`` for the first ``n`` rows (or the given rows), and the query's quantization step (none)."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        m = n if rows is None else len(rows)
        out = np.empty(m, dtype=np.float32)
        workers = _workers()
        if m < self._PARALLEL or workers == 1:
            self._part(codes, rows, q, out, 0, m)
        else:
            bounds = np.linspace(0, m, workers + 1).astype(int)
            futures = [_pool().submit(self._part, codes, rows, q, out, int(a), int(b))
                       for a, b in zip(bounds[:-1], bounds[1:])]
            for f in futures:
                f.result()
        return out, 0.0

    def _part(self, codes: np.ndarray, rows: np.ndarray | None, q: np.ndarray, out: np.ndarray, lo: int,
              hi: int) -> None:
        step = self._STEP
        buf = np.empty((step, codes.shape[1]), dtype=np.float32)
        gathered = np.empty((step, codes.shape[1]), dtype=np.int8) if rows is not None else None
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            if rows is None:
                block = codes[a:b]
            else:
                block = np.take(codes, rows[a:b], axis=0, out=gathered[:b - a], mode="clip")
            np.copyto(buf[:b - a], block, casting="unsafe")
            np.dot(buf[:b - a], q, out=out[a:b])


class _OnnxKernel:
    """onnxruntime's MatMulInteger (int8 x int8 → int32): NEON / dot-product kernels on the Pi.

    The query is quantized to int8 too (one scale), which adds its own small error.
    """

    name = "onnx"
    _STEP = 32768

    def __init__(self) -> None:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "scores",
            [helper.make_tensor_value_info("A", TensorProto.INT8, ["N", "D"]),
             helper.make_tensor_value_info("B", TensorProto.INT8, ["D", 1])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, ["N", 1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = _workers()
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin for a while after each call, taking the
        # cores from the re-rank, the web server and the other searches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def scores(self, codes: np.ndarray, n: int, rows: np.ndarray | None, q: np.ndarray) -> tuple[np.ndarray, float]:
        step_q = float(np.abs(q).max()) / 127.0 or 1.0
        qi = np.rint(q / step_q).astype(np.int8)[:, None]
        m = n if rows is None else len(rows)
        out = np.empty(m, dtype=np.float32)
        gathered = np.empty((min(self._STEP, m), codes.shape[1]), dtype=np.int8) if rows is not None else None
        for a in range(0, m, self._STEP):
            b = min(a + self._STEP, m)
            if rows is None:
                block = codes[a:b]
            else:
                block = np.take(codes, rows[a:b], axis=0, out=gathered[:b - a], mode="clip")
            out[a:b] = self._session.run(None, {"A": block, "B": qi})[0][:, 0]
        out *= step_q
        return out, step_q


_kernel_lock = threading.Lock()
_kernel: _NumpyKernel | _OnnxKernel | None = None
_kernel_rows = 0                     # how many rows the choice of _kernel was timed on
_kernels: dict[str, _NumpyKernel | _OnnxKernel] = {}
_forced_kernel: str | None = None
_scan_pool: ThreadPoolExecutor | None = None


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    global _scan_pool
    with _kernel_lock:
        if _scan_pool is None:
            _scan_pool = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="vec-scan")
        return _scan_pool


def set_kernel(name: str | None) -> None:
    """Force the scan kernel (``"numpy"`` or ``"onnx"``), or None to pick the faster by timing (the default)."""
    global _kernel, _forced_kernel, _kernel_rows
    if name not in (None, "numpy", "onnx"):
        raise ValueError(f"unknown kernel {name!r}")
    with _kernel_lock:
        _forced_kernel, _kernel = name, None
        _kernel_rows = 0


def _instance(name: str) -> _NumpyKernel | _OnnxKernel:
    with _kernel_lock:
        kernel = _kernels.get(name)
    if kernel is None:
        kernel = _NumpyKernel() if name == "numpy" else _OnnxKernel()
        with _kernel_lock:
            kernel = _kernels.setdefault(name, kernel)
    return kernel


def _get_kernel(dim: int, sample: np.ndarray | None = None) -> _NumpyKernel | _OnnxKernel:
    """The scan kernel, chosen by timing both on this CPU.

    Which wins depends on the CPU and on how far the vectors are from its caches: on x86
    they are close; onnxruntime has int8 dot-product kernels for the Pi 5's Cortex-A76 that
    numpy's convert-then-BLAS path cannot use. The choice is made once on 64k random rows,
    and made again on a built mirror's own rows when there are several times more of them
    (:func:`_build_now` passes them). numpy is kept unless onnxruntime is clearly faster, as
    it adds no quantization error of the query.
    """
    global _kernel, _kernel_rows
    with _kernel_lock:
        if _kernel is not None and (sample is None or len(sample) <= 2 * _kernel_rows or _forced_kernel):
            return _kernel
        forced = _forced_kernel
    if forced is not None:
        best, rows = _instance(forced), 0
    else:
        if sample is None:
            sample = np.random.default_rng(0).integers(-127, 128, size=(65536, dim), dtype=np.int8)
        numpy_kernel = best = _instance("numpy")
        rows = len(sample)
        try:
            onnx_kernel = _instance("onnx")
        except Exception as exc:  # noqa: BLE001 - any failure means: use numpy
            log.info("onnxruntime int8 kernel unavailable (%s); search scans with numpy", exc)
        else:
            q = np.random.default_rng(1).standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
            timings = {}
            for kernel in (numpy_kernel, onnx_kernel):
                kernel.scores(sample, len(sample), None, q)
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    kernel.scores(sample, len(sample), None, q)
                    runs.append(time.perf_counter() - t0)
                timings[kernel] = min(runs)
            if timings[onnx_kernel] < 0.8 * timings[numpy_kernel]:
                best = onnx_kernel
            log.info("vector scan kernel: %s (per %d vectors: numpy %.1f ms, onnx %.1f ms)", best.name, len(sample),
                     timings[numpy_kernel] * 1000, timings[onnx_kernel] * 1000)
    with _kernel_lock:
        if _kernel is None or rows > _kernel_rows:
            _kernel, _kernel_rows = best, rows
        return _kernel


class _Mirror:
    """One space's vectors in RAM as int8 + a scale per row, with their asset ids.

    Rows ``0..n-1`` are live (a deletion moves the last row into the hole). ``row_of`` maps
    an asset id to its row (-1: none) for ids below ``DENSE_IDS``; ``far`` holds the rest.
    Everything is changed only under the exclusive lock.
    """

    def __init__(self, key: tuple[str, int, float], dim: int) -> None:
        self.key = key
        self.dim = dim
        self.lock = _RWLock()
        self.version = -1            # the space version this mirror reflects; -1: not built
        self.n = 0
        self.ids = np.empty(0, dtype=np.int64)
        self.codes = np.empty((0, dim), dtype=np.int8)
        self.scales = np.empty(0, dtype=np.float32)
        self.row_of = np.empty(0, dtype=np.int32)
        self.far: dict[int, int] = {}
        self.build_seconds = 0.0
        self.kernel = ""
        self.used = time.monotonic()

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes + self.ids.nbytes + self.row_of.nbytes + 64 * len(self.far)

    @staticmethod
    def estimate(vectors: int, dim: int, max_id: int) -> int:
        return int(vectors * 1.05) * (dim + 12) + 4 * min(max_id + 1, DENSE_IDS)

    # -- keeping up with SQLite (exclusive lock held by the caller) ----------------------

    def build(self, conn: apsw.Connection, space: Space) -> None:
        t0 = time.perf_counter()
        version = space.version
        present = np.fromiter((i for (i,) in conn.execute(
            "SELECT asset_id FROM embedding_entries WHERE space_id = ? AND present = 1", (space.id,))), dtype=np.int64)
        self._reset(len(present), int(present.max()) if len(present) else 0)
        live = np.zeros(min(int(present.max()) + 1 if len(present) else 0, DENSE_IDS), dtype=bool)
        live[present[present < DENSE_IDS]] = True
        far_live = set(present[present >= DENSE_IDS].tolist())
        ids: list[int] = []
        blobs: list[bytes] = []
        # One statement: one snapshot. Writes after `version` are applied by the next sync.
        for asset_id, blob in conn.execute(f"SELECT asset_id, embedding FROM {space.table}"):
            ids.append(asset_id)
            blobs.append(blob)
            if len(ids) == 8192:
                self._add_scanned(ids, blobs, live, far_live)
                ids, blobs = [], []
        if ids:
            self._add_scanned(ids, blobs, live, far_live)
        self.version = version
        self.build_seconds = time.perf_counter() - t0
        log.info("search index for space %d: %d vectors, %.1f MB, built in %.1f s", space.id, self.n,
                 self.nbytes / 1e6, self.build_seconds)

    def _add_scanned(self, ids: list[int], blobs: list[bytes], live: np.ndarray, far_live: set[int]) -> None:
        arr = np.asarray(ids, dtype=np.int64)
        # A vector whose entry is not present=1 belongs to a deleted asset not yet swept.
        keep = np.zeros(len(arr), dtype=bool)
        near = (arr >= 0) & (arr < len(live))
        keep[near] = live[arr[near]]
        for j in np.flatnonzero(arr >= DENSE_IDS).tolist() if far_live else ():
            keep[j] = ids[j] in far_live
        if keep.any():
            mat = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), self.dim)
            self._put(arr[keep], mat[keep])

    def sync(self, conn: apsw.Connection, space: Space) -> bool:
        """Apply the space's changes since ``self.version``; False if there are too many to
        read one by one (build a new mirror instead). The caller holds the exclusive lock."""
        changes = conn.execute(
            "SELECT asset_id, present, version FROM embedding_entries WHERE space_id = ? AND version > ?",
            (space.id, self.version)).fetchall()
        if len(changes) > max(SYNC_MAX_CHANGES, self.n // 4):
            return False
        latest = {asset_id: present for asset_id, present, _ in changes}
        added = [a for a, p in latest.items() if p == 1]
        found, mat = _read_vectors(conn, space, added)
        gone = set(latest) - set(found)  # deleted, or deleted again since `changes` was read
        self._remove(gone)
        if found:
            self._put(np.asarray(found, dtype=np.int64), mat)
        self.version = max([space.version] + [v for _, _, v in changes])
        return True

    def _reset(self, capacity: int, max_id: int) -> None:
        capacity = max(1024, int(capacity * 1.05))
        self.n = 0
        self.ids = np.empty(capacity, dtype=np.int64)
        self.codes = np.empty((capacity, self.dim), dtype=np.int8)
        self.scales = np.empty(capacity, dtype=np.float32)
        self.row_of = np.full(min(max_id + 1, DENSE_IDS), -1, dtype=np.int32)
        self.far = {}

    def _reserve(self, total: int) -> None:
        if total <= len(self.ids):
            return
        capacity = max(total, int(len(self.ids) * 1.25) + 1024)
        for name in ("ids", "codes", "scales"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)

    def _set_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        near = ids < DENSE_IDS
        if near.any():
            top = int(ids[near].max())
            if top >= len(self.row_of):
                grown = np.full(min(max(top + 1, int(len(self.row_of) * 1.25)), DENSE_IDS), -1, dtype=np.int32)
                grown[:len(self.row_of)] = self.row_of
                self.row_of = grown
            self.row_of[ids[near]] = rows[near]
        for asset_id, row in zip(ids[~near].tolist(), rows[~near].tolist()):
            if row < 0:
                self.far.pop(asset_id, None)
            else:
                self.far[asset_id] = row

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of these asset ids, -1 for ids without a vector."""
        out = np.full(len(ids), -1, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.row_of))
        out[inside] = self.row_of[ids[inside]]
        if self.far:
            for j in np.flatnonzero(ids >= DENSE_IDS).tolist():
                out[j] = self.far.get(int(ids[j]), -1)
        return out

    def _put(self, ids: np.ndarray, mat: np.ndarray) -> None:
        codes, scales = _quantize(mat)
        rows = self.rows_of(ids)
        old = rows >= 0
        self.codes[rows[old]] = codes[old]
        self.scales[rows[old]] = scales[old]
        fresh = ~old
        count_new = int(fresh.sum())
        if count_new:
            self._reserve(self.n + count_new)
            new_rows = np.arange(self.n, self.n + count_new)
            self.ids[new_rows] = ids[fresh]
            self.codes[new_rows] = codes[fresh]
            self.scales[new_rows] = scales[fresh]
            self.n += count_new
            self._set_rows(ids[fresh], new_rows)

    def _remove(self, ids: Iterable[int]) -> None:
        for asset_id in ids:
            row = int(self.rows_of(np.asarray([asset_id], dtype=np.int64))[0])
            if row < 0:
                continue
            last = self.n - 1
            if row != last:  # keep rows dense: the last row fills the hole
                moved = int(self.ids[last])
                self.ids[row], self.codes[row], self.scales[row] = moved, self.codes[last], self.scales[last]
                self._set_rows(np.asarray([moved], dtype=np.int64), np.asarray([row]))
            self._set_rows(np.asarray([asset_id], dtype=np.int64), np.asarray([-1]))
            self.n -= 1

    # -- searching (shared lock) ---------------------------------------------------------

    def candidates(self, q: np.ndarray, k: int, allowed: np.ndarray | None, min_score: float | None) -> np.ndarray:
        """Asset ids whose exact score could be in the top ``k`` (among ``allowed``)."""
        with self.lock.shared():
            self.used = time.monotonic()
            n = self.n
            if n == 0:
                return np.empty(0, dtype=np.int64)
            kernel = _get_kernel(self.dim)
            self.kernel = kernel.name
            if allowed is None:
                rows = None
                approx, step_q = kernel.scores(self.codes, n, None, q)
                scales = self.scales[:n]
            else:
                rows = self.rows_of(allowed)
                rows = rows[(rows >= 0) & (rows < n)]
                if not len(rows):
                    return np.empty(0, dtype=np.int64)
                if len(rows) > n // 3:
                    # A broad filter: one sequential scan of everything beats gathering rows.
                    full, step_q = kernel.scores(self.codes, n, None, q)
                    approx = full[rows]
                else:
                    approx, step_q = kernel.scores(self.codes, n, rows, q)
                scales = self.scales[rows]
            approx *= scales
            picked = _pick(approx, scales, step_q, k, min_score)
            return self.ids[picked] if rows is None else self.ids[rows[picked]]


def _pick(approx: np.ndarray, scales: np.ndarray, step_q: float, k: int, min_score: float | None) -> np.ndarray:
    """Indexes of the scores that may belong to the exact top ``k``.

    The int8 error of a row's score has a standard deviation of about
    ``sqrt(scale² + step_q²) / sqrt(12)`` (rounding errors uniform in ±half a step over
    unit vectors), so every row whose score plus Z of those could beat the k-th best
    score minus Z of its own is kept. Typically that is k plus 10-25%.
    """
    m = len(approx)
    kk = min(k, m)
    coef = np.float32(Z / np.sqrt(12.0))
    step2 = np.float32(step_q * step_q)

    def margin(idx: np.ndarray | slice) -> np.ndarray:
        s = scales[idx]
        return coef * np.sqrt(s * s + step2)

    # The k-th best lower bound is found among the best few by int8 score; rows outside
    # them cannot change it as long as it stays above their (smaller) scores.
    few = min(m, max(4 * kk, kk + 64))
    top = np.argpartition(approx, m - few)[m - few:] if few < m else np.arange(m)
    lower = approx[top] - margin(top)
    kth = np.partition(lower, few - kk)[few - kk]
    if few < m and kth < approx[top].min():
        lower = approx - margin(slice(None))
        kth = np.partition(lower, m - kk)[m - kk]
    floor = kth if min_score is None else max(kth, np.float32(min_score))
    widest = coef * np.sqrt(np.float32(scales.max()) ** 2 + step2)
    near = np.flatnonzero(approx >= floor - widest)
    picked = near[approx[near] + margin(near) >= floor]
    cap = max(4 * k, k + 256)
    if len(picked) > cap:  # many near-ties: the best by int8 score are the best bet
        picked = picked[np.argpartition(-approx[picked], cap - 1)[:cap]]
    return picked


# -- the mirror registry ----------------------------------------------------------------

_Key = tuple[str, int, float]
_registry_lock = threading.Lock()
_mirrors: dict[_Key, _Mirror] = {}
_building: set[_Key] = set()
_too_big: dict[_Key, int] = {}       # spaces whose mirror would break the memory limit: bytes needed
_memory_limit: int | None = None


def set_memory_limit(nbytes: int | None) -> None:
    """Cap the RAM all mirrors may use together (None: 40% of physical memory, the default).

    A space whose mirror does not fit is searched in SQLite directly: exact, but slow.
    """
    global _memory_limit
    with _registry_lock:
        _memory_limit = None if nbytes is None else int(nbytes)
        _too_big.clear()


def ram_share(fraction: float, fallback: int) -> int:
    """``fraction`` of this machine's physical memory in bytes (``fallback`` where unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * fraction)
    except (ValueError, OSError, AttributeError):
        return fallback


def _limit() -> int:
    return _memory_limit if _memory_limit is not None else ram_share(0.4, 1 << 30)


def _path(conn: apsw.Connection) -> str:
    # An unnamed (temporary) database is private to its connection.
    return os.path.realpath(conn.filename) if conn.filename else f"conn-{id(conn)}"


def _key(conn: apsw.Connection, space: Space) -> _Key:
    # created_at too: a database file deleted and made again must not meet an old mirror.
    return _path(conn), space.id, space.created_at


def _mirror_for(conn: apsw.Connection, space: Space, *, wait: bool = False) -> _Mirror | None:
    """The space's mirror, up to date with what ``conn`` sees; None: search SQLite instead.

    None when ``conn`` has uncommitted writes (the shared mirror holds committed data only,
    so a rolled-back write can never linger in it), when the mirror would not fit the memory
    limit, or while a big space's mirror is built in the background (unless ``wait``).
    """
    if conn.txn_state("main") == apsw.SQLITE_TXN_WRITE:
        return None
    key = _key(conn, space)
    with _registry_lock:
        mirror = _mirrors.get(key)
        if key in _too_big:
            return None
    if mirror is not None:
        mirror.used = time.monotonic()
        if mirror.version >= space.version:
            return mirror
        with mirror.lock.exclusive():
            if mirror.version >= space.version or mirror.sync(conn, space):
                return mirror
    return _build(conn, space, key, wait=wait)


def _build(conn: apsw.Connection, space: Space, key: _Key, *, wait: bool) -> _Mirror | None:
    """Build a new mirror from SQLite: now, or in a background thread for a big space."""
    with _registry_lock:
        if key in _building:
            return None
        _building.add(key)
    # The largest asset id bounds the number of vectors and is one index probe away.
    (largest,) = conn.execute("SELECT coalesce(max(asset_id), 0) FROM embedding_entries WHERE space_id = ?",
                              (space.id,)).fetchone()
    if not wait and conn.filename and largest > SYNC_BUILD_MAX:
        threading.Thread(target=_build_now, args=(None, key, space.id, space.dim), daemon=True,
                         name=f"vec-mirror-{space.id}").start()
        return None
    return _build_now(conn, key, space.id, space.dim)


def _build_now(conn: apsw.Connection | None, key: _Key, space_id: int, dim: int) -> _Mirror | None:
    """Read a space into a new mirror and publish it, if it fits the memory limit.

    Reads through a private connection when the database is a file, so that a request's
    query time limit (a progress handler on its connection) cannot interrupt the build.
    """
    own = None
    try:
        own = connect(key[0], readonly=True) if not key[0].startswith("conn-") else None
        source = own or conn
        assert source is not None
        space = get_space(source, space_id)
        if space is None or space.state == "retired":
            return None
        vectors, max_id = source.execute(
            "SELECT count(*), coalesce(max(asset_id), 0) FROM embedding_entries WHERE space_id = ? AND present = 1",
            (space.id,)).fetchone()
        need = _Mirror.estimate(vectors, space.dim, max_id)
        with _registry_lock:
            # Make room: drop the least recently used other mirrors.
            others = sorted((m for k, m in _mirrors.items() if k != key), key=lambda m: m.used)
            used = sum(m.nbytes for m in others)
            while others and used + need > _limit():
                victim = others.pop(0)
                used -= victim.nbytes
                _mirrors.pop(victim.key, None)
            if used + need > _limit():
                _too_big[key] = need
                _mirrors.pop(key, None)
                log.warning("search index for space %d needs %d MB, over the memory limit (%d MB): searching "
                            "SQLite directly, which is slow", space.id, need // 1_000_000, _limit() // 1_000_000)
                return None
        mirror = _Mirror(key, dim)
        mirror.build(source, space)
        # Time the kernels on these vectors if there are many more than the last choice saw.
        _get_kernel(dim, mirror.codes[:min(mirror.n, 262144)] if mirror.n >= 65536 else None)
        with _registry_lock:
            _mirrors[key] = mirror
        return mirror
    except Exception:
        if conn is not None:
            raise
        log.exception("building the search index for space %d failed", space_id)
        return None
    finally:
        if own is not None:
            own.close()
        with _registry_lock:
            _building.discard(key)


def _forget_mirror(conn: apsw.Connection, space_id: int) -> None:
    path = _path(conn)
    with _registry_lock:
        for key in [key for key in _mirrors if key[:2] == (path, space_id)]:
            del _mirrors[key]


def warm(conn_or_db: apsw.Connection | Database, space_id: int) -> dict[str, Any] | None:
    """Build (or update) a space's mirror now and wait for it, e.g. at startup in a thread,
    so the first searches do not fall back to SQLite while it is built.

    Returns its :func:`mirror_stats` entry, or None when it does not fit the memory limit.
    """
    if isinstance(conn_or_db, Database):
        with conn_or_db.reader() as conn:
            return warm(conn, space_id)
    space = _space_or_raise(conn_or_db, space_id)
    mirror = _mirror_for(conn_or_db, space, wait=True)
    while mirror is None and _key(conn_or_db, space) in _building:  # another thread builds it
        time.sleep(0.05)
        mirror = _mirror_for(conn_or_db, space, wait=True)
    if mirror is None:
        return None
    _get_kernel(space.dim)
    return _stats(mirror)


def _stats(mirror: _Mirror) -> dict[str, Any]:
    return {"path": mirror.key[0], "space_id": mirror.key[1], "vectors": mirror.n, "dim": mirror.dim,
            "bytes": mirror.nbytes, "version": mirror.version, "build_seconds": round(mirror.build_seconds, 3),
            "kernel": mirror.kernel or (_kernel.name if _kernel else ""), "state": "ready"}


def mirror_stats() -> list[dict[str, Any]]:
    """The mirrors of this process: vectors, bytes of RAM, build time, scan kernel, and
    state: ``ready``, ``building`` or ``too big`` (for status pages and benchmarks)."""
    with _registry_lock:
        out = [_stats(m) for m in _mirrors.values()]
        out += [{"path": k[0], "space_id": k[1], "state": "building"} for k in _building if k not in _mirrors]
        out += [{"path": k[0], "space_id": k[1], "state": "too big", "bytes_needed": need}
                for k, need in _too_big.items()]
        return out


def clear_mirrors() -> None:
    """Forget every mirror (they are rebuilt on the next search); for tests and benchmarks."""
    with _registry_lock:
        _mirrors.clear()
        _too_big.clear()
