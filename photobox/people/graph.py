"""The face neighbour graph: each face's nearest faces, stored as faces arrive.

A full re-cluster needs every face's ``k`` nearest neighbours. Asking the vector index once
per face costs O(n² · d) (a sqlite-vec KNN is a scan of the whole table: ~6 ms a query at
10k faces, ten times that at 100k), but the face stage already runs one KNN query per new
face to place it. Here that answer is kept (``face_neighbours``, ~200 bytes a face), and
the faces it found get the new face in *their* lists when it is nearer than their current
``k``-th, so a re-cluster reads O(n · k) rows instead.

Exactness. A stored list is the ``GRAPH_K - 1`` nearest other faces within ``GRAPH_DISTANCE``
(what a ``GRAPH_K`` query answers besides the face itself), or all of them when fewer. A new
face is offered to the faces among its ``REVERSE_K`` nearest (not only its ``GRAPH_K``): a
face ``j`` that should list the new face but is not among its ``REVERSE_K`` nearest would
need ``REVERSE_K`` faces nearer the new face than ``j`` while fewer than ``GRAPH_K`` faces
are nearer ``j`` than the new face (a hub and an outlier), which ``scripts/bench faces``
counts. A deletion can leave a full list short of its true ``k``-th face: such a list is not
trusted (:func:`known_neighbours` leaves it out) and the re-cluster queries it again and
stores it.

Lists that must be (re)built in bulk are computed by :func:`scan_neighbours`, a block-wise
matrix product over the vectors streamed from SQLite in chunks (bounded memory: one block
of vectors and one block of similarities), ~10x faster than one sqlite-vec query a face.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import apsw
import numpy as np

from photobox.db.sql import id_chunks
from photobox.people.cluster import DEFAULTS

__all__ = ["GRAPH_DISTANCE", "GRAPH_K", "REVERSE_K", "known_neighbours", "offer_new_face", "save_lists",
           "scan_neighbours"]

#: Neighbours kept a face: the re-cluster's ``k`` and reach (a re-cluster with a larger ``k``
#: or reach than these queries instead of reading the graph).
GRAPH_K = DEFAULTS.k
GRAPH_DISTANCE = DEFAULTS.max_distance
#: Nearest faces of a new face that are offered it for their own lists (one KNN query of
#: this size costs about the same as one of ``GRAPH_K``: the scan dominates).
REVERSE_K = 4 * GRAPH_K
#: Faces a list holds: a KNN query for a face in the index answers the face itself first, so
#: a query-based re-cluster sees ``GRAPH_K - 1`` others; the stored graph holds the same.
KEEP = GRAPH_K - 1

#: Vectors per block of the bulk scan, and query rows per product: 4096 × 1024 float32
#: similarities are 16 MB.
SCAN_BLOCK = 4096


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _pack(ids: np.ndarray, dists: np.ndarray) -> tuple[bytes, bytes]:
    return np.asarray(ids, "<i8").tobytes(), np.asarray(dists, "<f4").tobytes()


def _unpack(ids: bytes, dists: bytes) -> tuple[np.ndarray, np.ndarray]:
    return np.frombuffer(ids, "<i8"), np.frombuffer(dists, "<f4")


def _trim(ids: np.ndarray, dists: np.ndarray, face_id: int) -> tuple[np.ndarray, np.ndarray]:
    """A list as stored: ascending, itself and empty slots out, within reach, ``KEEP`` long."""
    ids = np.asarray(ids, np.int64)
    dists = np.asarray(dists, np.float32)
    ok = (ids >= 0) & (ids != face_id) & (dists <= GRAPH_DISTANCE)
    ids, dists = ids[ok], dists[ok]
    o = np.argsort(dists, kind="stable")[:KEEP]
    return ids[o], dists[o]


def offer_new_face(conn: apsw.Connection, face_id: int, ids: np.ndarray, dists: np.ndarray) -> None:
    """Store a new face's list and add it to the lists of the faces it is near.

    Args:
        conn: a connection in a write transaction.
        face_id: the new face.
        ids, dists: its ``REVERSE_K`` (or more) nearest faces, ascending, ``-1`` / ``inf``
            for empty slots (as the KNN callback answers).
    """
    ids, dists = np.asarray(ids, np.int64), np.asarray(dists, np.float32)
    ok = (ids >= 0) & (ids != face_id) & (dists <= GRAPH_DISTANCE)
    near = list(zip(ids[ok].tolist(), dists[ok].tolist()))
    own_ids, own_d = _trim(ids, dists, face_id)
    conn.execute("INSERT INTO face_neighbours (face_id, ids, distances) VALUES (?, ?, ?) "
                 "ON CONFLICT (face_id) DO UPDATE SET ids = excluded.ids, distances = excluded.distances",
                 (face_id, *_pack(own_ids, own_d)))
    if not near:
        return
    lists = {}
    for chunk, marks in id_chunks([i for i, _ in near]):
        lists.update((f, (a, b)) for f, a, b in conn.execute(
            f"SELECT face_id, ids, distances FROM face_neighbours WHERE face_id IN ({marks})", chunk))
    for other, d in near:
        row = lists.get(other)
        if row is None:
            continue  # a face from before the graph: the next re-cluster builds its list
        o_ids, o_d = _unpack(*row)
        if face_id in o_ids or (len(o_ids) >= KEEP and d >= o_d[-1]):
            continue
        at = int(np.searchsorted(o_d, d, side="right"))
        n_ids = np.insert(o_ids, at, face_id)[:KEEP]
        n_d = np.insert(o_d, at, np.float32(d))[:KEEP]
        conn.execute("UPDATE face_neighbours SET ids = ?, distances = ? WHERE face_id = ?",
                     (*_pack(n_ids, n_d), other))


def known_neighbours(conn: apsw.Connection, present: np.ndarray):
    """The re-cluster's :data:`~photobox.people.cluster.KnownNeighbours` over the stored graph.

    Args:
        conn: a reading connection (its snapshot must be the one the faces are read from).
        present: the sorted ids of the faces being clustered. Neighbours not among them (a
            deleted face) are dropped; a *full* list that lost one may be missing its true
            ``k``-th face, so it is left out (queried again), while a shorter list held every
            face in reach and stays exact.
    """
    present = np.asarray(present, np.int64)

    def known(face_ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for chunk, marks in id_chunks(face_ids):
            for face_id, blob_i, blob_d in conn.execute(
                    f"SELECT face_id, ids, distances FROM face_neighbours WHERE face_id IN ({marks})", chunk):
                ids, dists = _unpack(blob_i, blob_d)
                if len(ids):
                    pos = np.clip(np.searchsorted(present, ids), 0, max(0, len(present) - 1))
                    alive = present[pos] == ids if len(present) else np.zeros(len(ids), bool)
                    if not alive.all():
                        if len(ids) >= KEEP:
                            continue
                        ids, dists = ids[alive], dists[alive]
                out[face_id] = (ids, dists)
        return out

    return known


def save_lists(conn: apsw.Connection, rows: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> int:
    """Store lists a re-cluster had to query (``(face id, ids, distances)``); returns how many."""
    n = 0
    for face_id, ids, dists in rows:
        own_ids, own_d = _trim(ids, dists, face_id)
        # The face may have been deleted since the re-cluster read it.
        conn.execute("INSERT INTO face_neighbours (face_id, ids, distances) SELECT ?, ?, ? "
                     "WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?) "
                     "ON CONFLICT (face_id) DO UPDATE SET ids = excluded.ids, distances = excluded.distances",
                     (face_id, *_pack(own_ids, own_d), face_id))
        n += conn.changes()
    return n


def scan_neighbours(conn: apsw.Connection, table: str, queries: np.ndarray, k: int,
                    max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact KNN of many queries at once: one pass over ``table`` (a vec0 table of unit vectors).

    The vectors stream from SQLite ``SCAN_BLOCK`` at a time; each block is multiplied with
    all queries, and only pairs within ``max_distance`` (few: most faces are strangers) are
    merged into the best ``k`` per query, so memory is one block plus ``queries × k``, never
    the table. Same answer shape as the KNN callback.
    """
    q = _unit(queries)
    m = len(q)
    best_s = np.full((m, k), -np.inf, np.float32)
    best_i = np.full((m, k), -1, np.int64)
    floor = np.float32(1.0 - max_distance)
    cur = conn.execute(f"SELECT face_id, embedding FROM {table}")
    while rows := list(islice(cur, SCAN_BLOCK)):
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vecs = _unit(np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1))
        sims = q @ vecs.T                                            # (m, block)
        r, c = np.nonzero(sims >= floor)
        if not len(r):
            continue
        # Merge this block's pairs in reach with the best so far: sort by (query, -similarity)
        # and keep the first k of each query.
        er, ec = np.nonzero(best_i >= 0)
        row = np.concatenate([er, r])
        sim = np.concatenate([best_s[er, ec], sims[r, c]])
        fid = np.concatenate([best_i[er, ec], ids[c]])
        o = np.lexsort((-sim, row))
        row, sim, fid = row[o], sim[o], fid[o]
        rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
        keep = rank < k
        best_s.fill(-np.inf)
        best_i.fill(-1)
        best_s[row[keep], rank[keep]] = sim[keep]
        best_i[row[keep], rank[keep]] = fid[keep]
    d = (1.0 - best_s).astype(np.float32)
    far = best_i < 0
    return best_i, np.where(far, np.inf, d).astype(np.float32)
