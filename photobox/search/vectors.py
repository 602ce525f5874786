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

**Search.** Each process keeps a mirror of the active space in RAM (:mod:`photobox.vectors`:
int8 with one scale a vector, 528 B a 512-d vector). A query scores every *admissible* row (the
filter applies before ranking, so a filter matching 0.5% of the library still gets its true
top-k), keeps each row whose score could still reach the top k given the quantization error,
and re-ranks those with their float32 vectors read back from SQLite: results and scores are
exact float32 cosine similarities. Without a mirror, sqlite-vec's float32 brute force answers
(exact, 6-9x slower). The README's search section has the measurements behind this choice.

**The mirror is a cache.** It is built lazily from SQLite (by :func:`warm`, the first search,
or in a background thread for a big space, searched in SQLite meanwhile), follows every
committed write of any process through the space's version counter, and is dropped when its
space is retired or the shared memory budget runs short (:func:`set_memory_limit`; a space
that does not fit is searched in SQLite). Searches run in reader threads and share a mirror
under a readers-writer lock; whichever first sees a newer version applies the changes.
Writers never touch it: they only write SQL in their transaction.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apsw
import numpy as np

from photobox.db.connection import connect
from photobox.db.database import Database
from photobox.db.sql import id_chunks
from photobox.library.assets import VISIBLE_WITH_ARCHIVED
from photobox.vectors import registry
from photobox.vectors.kernels import get_kernel, set_kernel
from photobox.vectors.mirror import DENSE_IDS, Mirror
from photobox.vectors.registry import set_memory_limit
from photobox.vectors.rows import batches, id_array, matrix, read_by_id, unit_rows

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
#: A space with more vectors gets its mirror built in a background thread (searches ask
#: SQLite meanwhile) instead of making the first search wait (~6 s at 1M on x86, more on a Pi).
SYNC_BUILD_MAX = 50_000
#: More changes than this (or a quarter of the mirror) since a mirror's version: rebuild it.
SYNC_MAX_CHANGES = 20_000
_NO_ID = np.iinfo(np.int64).max
_KIND = "clip"


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
        mat = unit_rows(vectors, space.dim)
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
        f"SELECT a.id FROM assets a WHERE a.id < ? AND {VISIBLE_WITH_ARCHIVED} "
        "AND NOT EXISTS (SELECT 1 FROM embedding_entries e "
        "                WHERE e.space_id = ? AND e.asset_id = a.id AND e.present = 1) "
        "ORDER BY a.id DESC LIMIT ?", (before, int(space_id), int(limit)))]


def get_vector(conn: apsw.Connection, space_id: int, asset_id: int) -> np.ndarray | None:
    """The stored (unit) vector of an asset in a space, or None if it has none."""
    space = _space_or_raise(conn, space_id)
    if not _live(conn, space.id, [int(asset_id)]):
        return None
    found, mat = _read_vectors(conn, space, [int(asset_id)])
    return mat[0].copy() if len(found) else None


def _live(conn: apsw.Connection, space_id: int, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for chunk, marks in id_chunks(list(ids)):
        out.update(i for (i,) in conn.execute(
            f"SELECT asset_id FROM embedding_entries WHERE space_id = ? AND present = 1 AND asset_id IN ({marks})",
            (space_id, *chunk)))
    return out


def _read_vectors(conn: apsw.Connection, space: Space, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Float32 vectors of ``ids`` from SQLite (one indexed read each); ids without one are left out."""
    return read_by_id(conn, f"SELECT embedding FROM {space.table} WHERE asset_id = ?", ids, space.dim)


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
    q = unit_rows(query, space.dim)[0]
    k = int(k)
    allowed = None if allowed_ids is None else id_array(allowed_ids)
    if k <= 0 or (allowed is not None and not len(allowed)):
        return []
    mirror = _mirror_for(conn, space)
    if mirror is None:
        return _search_sqlite(conn, space, q, k, allowed, min_score)
    with mirror.lock.shared():
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


def _rerank(conn: apsw.Connection, space: Space, q: np.ndarray, candidates: np.ndarray, k: int,
            min_score: float | None) -> list[tuple[int, float]]:
    """Exact float32 scores of the candidates, read back from SQLite; best ``k`` first."""
    found, mat = _read_vectors(conn, space, candidates.tolist())
    return _best(found, mat @ q, k, min_score)


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
        ids, mat = _read_vectors(conn, space, np.unique(allowed).tolist())
    else:
        sql = f"SELECT asset_id, embedding FROM {space.table} WHERE embedding MATCH ? AND k = ?"
        params: tuple[Any, ...] = (q.tobytes(), fetch)
        if allowed is not None:
            sql += " AND asset_id IN (SELECT value FROM json_each(?))"
            params += (json.dumps(allowed.tolist()),)
        rows = conn.execute(sql, params).fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        mat = matrix([r[1] for r in rows], space.dim)
    if orphans and len(ids):
        live = _live(conn, space.id, ids.tolist())
        keep = np.fromiter((i in live for i in ids.tolist()), dtype=bool, count=len(ids))
        ids, mat = ids[keep], mat[keep]
    return _best(ids, mat @ q, k, min_score)



# -- the RAM mirror --------------------------------------------------------------------


class _SpaceMirror(Mirror):
    """A space's vectors in RAM (:class:`~photobox.vectors.mirror.Mirror`), read from its
    vec0 table; ``version`` is the space version it reflects."""

    def build(self, conn: apsw.Connection, space: Space) -> None:
        """Read the space's live vectors (the caller holds the exclusive lock or publishes later)."""
        t0 = time.perf_counter()
        version = space.version
        present = np.fromiter((i for (i,) in conn.execute(
            "SELECT asset_id FROM embedding_entries WHERE space_id = ? AND present = 1", (space.id,))), dtype=np.int64)
        self.reset(len(present), int(present.max()) if len(present) else 0)
        live = np.zeros(min(int(present.max()) + 1 if len(present) else 0, DENSE_IDS), dtype=bool)
        live[present[present < DENSE_IDS]] = True
        far_live = set(present[present >= DENSE_IDS].tolist())
        # One statement: one snapshot. Writes after `version` are applied by the next sync.
        for ids, mat in batches(conn.execute(f"SELECT asset_id, embedding FROM {space.table}"), self.dim):
            # A vector whose entry is not present=1 belongs to a deleted asset not yet swept.
            keep = np.zeros(len(ids), dtype=bool)
            near = (ids >= 0) & (ids < len(live))
            keep[near] = live[ids[near]]
            for j in np.flatnonzero(ids >= DENSE_IDS).tolist() if far_live else ():
                keep[j] = int(ids[j]) in far_live
            if keep.any():
                self.put(ids[keep], mat[keep])
        self.version = version
        self.build_seconds = time.perf_counter() - t0
        log.info("search index for space %d: %d vectors, %.1f MB, built in %.1f s", space.id, self.n,
                 self.nbytes / 1e6, self.build_seconds)

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
        gone = set(latest) - set(found.tolist())  # deleted, or deleted again since `changes` was read
        self.remove(gone)
        if len(found):
            self.put(found, mat)
        self.version = max([space.version] + [v for _, _, v in changes])
        return True


def _path(conn: apsw.Connection) -> str:
    # An unnamed (temporary) database is private to its connection.
    return os.path.realpath(conn.filename) if conn.filename else f"conn-{id(conn)}"


def _key(conn: apsw.Connection, space: Space) -> tuple[str, str, int, float]:
    # created_at too: a database file deleted and made again must not meet an old mirror.
    return _KIND, _path(conn), space.id, space.created_at


def _mirror_for(conn: apsw.Connection, space: Space, *, wait: bool = False) -> _SpaceMirror | None:
    """The space's mirror, up to date with what ``conn`` sees; None: search SQLite instead.

    None when ``conn`` has uncommitted writes (the shared mirror holds committed data only,
    so a rolled-back write can never linger in it), when the mirror would not fit the memory
    budget, or while a big space's mirror is built in the background (unless ``wait``).
    """
    if conn.txn_state("main") == apsw.SQLITE_TXN_WRITE:
        return None
    key = _key(conn, space)
    if registry.too_big(key):
        return None
    mirror = registry.get(key)
    if mirror is not None:
        if mirror.version >= space.version:
            return mirror
        with mirror.lock.exclusive():
            synced = mirror.version >= space.version or mirror.sync(conn, space)
        if synced:
            return mirror if registry.refit(key) else None
    return _build(conn, space, key, wait=wait)


def _build(conn: apsw.Connection, space: Space, key: tuple, *, wait: bool) -> _SpaceMirror | None:
    """Build a new mirror from SQLite: now, or in a background thread for a big space."""
    if registry.building(key):
        return None
    # The largest asset id bounds the number of vectors and is one index probe away.
    (largest,) = conn.execute("SELECT coalesce(max(asset_id), 0) FROM embedding_entries WHERE space_id = ?",
                              (space.id,)).fetchone()
    if not wait and conn.filename and largest > SYNC_BUILD_MAX:
        return registry.build(key, lambda: _build_now(None, key, space.id, space.dim), background=True)
    return registry.build(key, lambda: _build_now(conn, key, space.id, space.dim))


def _build_now(conn: apsw.Connection | None, key: tuple, space_id: int, dim: int) -> _SpaceMirror | None:
    """Read a space into a new mirror, if it fits the memory budget (the registry publishes it).

    Reads through a private connection when the database is a file, so that a request's
    query time limit (a progress handler on its connection) cannot interrupt the build.
    """
    path = key[1]
    own = connect(path, readonly=True) if not path.startswith("conn-") else None
    try:
        source = own or conn
        assert source is not None
        space = get_space(source, space_id)
        if space is None or space.state == "retired":
            return None
        vectors, max_id = source.execute(
            "SELECT count(*), coalesce(max(asset_id), 0) FROM embedding_entries WHERE space_id = ? AND present = 1",
            (space.id,)).fetchone()
        if not registry.admit(key, Mirror.estimate(vectors, space.dim, max_id)):
            return None
        mirror = _SpaceMirror(key, dim)
        mirror.build(source, space)
        # Time the kernels on these vectors if there are many more than the last choice saw.
        get_kernel(dim, mirror.codes[:min(mirror.n, 262144)] if mirror.n >= 65536 else None)
        return mirror
    finally:
        if own is not None:
            own.close()


def _forget_mirror(conn: apsw.Connection, space_id: int) -> None:
    registry.forget(_KIND, _path(conn), space_id)


def warm(conn_or_db: apsw.Connection | Database, space_id: int) -> dict[str, Any] | None:
    """Build (or update) a space's mirror now and wait for it, e.g. at startup in a thread,
    so the first searches do not fall back to SQLite while it is built.

    Returns its :func:`mirror_stats` entry, or None when it does not fit the memory budget.
    """
    if isinstance(conn_or_db, Database):
        with conn_or_db.reader() as conn:
            return warm(conn, space_id)
    space = _space_or_raise(conn_or_db, space_id)
    mirror = registry.wait_for(_key(conn_or_db, space), lambda: _mirror_for(conn_or_db, space, wait=True))
    if mirror is None:
        return None
    get_kernel(space.dim)
    return _stats(registry.describe(mirror))


def _stats(entry: dict[str, Any]) -> dict[str, Any]:
    return {"space_id": entry["key"][2], **{k: v for k, v in entry.items() if k not in ("kind", "key")}}


def mirror_stats() -> list[dict[str, Any]]:
    """The CLIP mirrors of this process: path, space_id, vectors, bytes of RAM, build time, scan
    kernel, and state: ``ready``, ``building`` or ``too big`` (for status pages and benchmarks)."""
    return [_stats(s) for s in registry.mirror_stats(_KIND)]


def clear_mirrors() -> None:
    """Forget every mirror, CLIP and faces (rebuilt on their next use); for tests and benchmarks."""
    registry.clear_mirrors()
