"""The stored face neighbour graph: kept as faces arrive, read by the full re-cluster.

Faces go in as the faces stage puts them (rows, vectors in sqlite-vec, :func:`place_face`),
with synthetic embeddings from ``scripts/bench_faces.py``; the re-cluster from the stored
lists must give exactly what the query-based build gives.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from photobox.people import ClusterParams, recluster
from photobox.people.faces_job import ensure_face_table, face_table, neighbours_for, place_face, recluster_all
from photobox.people.graph import KEEP, known_neighbours, scan_neighbours

_spec = importlib.util.spec_from_file_location(
    "bench_faces", Path(__file__).resolve().parents[1] / "scripts" / "bench_faces.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

DIM = bench.DIM


def add_photos(box, x: np.ndarray, rng: np.random.Generator, per_photo: int = 2) -> list[int]:
    """Store ``x`` as faces, ``per_photo`` to a photo in random order, as the faces job does.

    Returns the face id of each row of ``x``.
    """
    face_of = [0] * len(x)
    order = rng.permutation(len(x)).tolist()
    now = 1_700_000_000.0
    for start in range(0, len(order), per_photo):
        rows = order[start:start + per_photo]
        with box.db.transaction() as conn:
            conn.execute("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, "
                         "sort_ts, created_at, updated_at) VALUES (1, ?, 'a.jpg', randomblob(20), 1, 0, 'image', "
                         "0, 0, 0)", (f"p{start}.jpg",))
            asset = conn.last_insert_rowid()
            table = ensure_face_table(conn, DIM)
            new = []
            for r in rows:
                conn.execute("INSERT INTO faces (asset_id, x1, y1, x2, y2, score, model, created_at) "
                             "VALUES (?, 0.1, 0.1, 0.3, 0.3, 0.9, 'test', ?)", (asset, now))
                face_of[r] = conn.last_insert_rowid()
                conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)", (face_of[r], x[r].tobytes()))
                new.append((face_of[r], x[r]))
            for face_id, vec in new:
                place_face(conn, face_id, vec, DIM, now=now)
    return face_of


def exact_lists(x: np.ndarray, face_of: list[int]) -> dict[int, set[int]]:
    """Each face's KEEP nearest others within reach, by brute force over all of them."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    out = {}
    for r in range(len(x)):
        o = np.argsort(-sims[r])[:KEEP]
        out[face_of[r]] = {face_of[j] for j in o if 1 - sims[r, j] <= 0.5}
    return out


def stored_lists(conn) -> dict[int, set[int]]:
    return {f: set(np.frombuffer(b, "<i8").tolist()) for f, b in conn.execute("SELECT face_id, ids FROM face_neighbours")}


def from_db(conn, **kw) -> dict[int, int | None]:
    faces = ((f, np.frombuffer(b, np.float32)) for f, b in
             conn.execute(f"SELECT face_id, embedding FROM {face_table(DIM)} ORDER BY face_id").fetchall())
    return recluster(faces, **kw)


def refuse(*_):
    raise AssertionError("the stored graph should have answered")


@pytest.fixture
def library(box):
    x, y = bench.make_scenario("library", np.random.default_rng(5), 0.5)
    face_of = add_photos(box, x, np.random.default_rng(6))
    return box, x, y, face_of


def test_stored_lists_are_the_exact_nearest(library):
    box, x, _, face_of = library
    with box.db.reader() as conn:
        stored = stored_lists(conn)
    exact = exact_lists(x, face_of)
    assert set(stored) == set(exact)
    # Kept up to date as later faces arrive (reverse updates), not just the list at insert
    # time; ties at the k-th place may differ, nothing else.
    wrong = [f for f in exact if stored[f] != exact[f]]
    assert len(wrong) <= len(exact) // 200, wrong


def test_recluster_from_stored_graph_equals_query_based(library):
    box, x, y, face_of = library
    with box.db.reader() as conn:
        present = np.array(sorted(face_of))
        # Before: a sqlite-vec query per face (small chunks keep neighbours_for on vec0).
        queried = from_db(conn, neighbours=neighbours_for(conn, DIM), params=ClusterParams(chunk_size=16))
        scanned = from_db(conn, neighbours=neighbours_for(conn, DIM))  # block-wise scan
        stored = from_db(conn, neighbours=refuse, known=known_neighbours(conn, present))
    assert stored == queried == scanned
    s = bench.pair_scores(y, bench.as_labels({face_of.index(f): p for f, p in stored.items()}, len(x)))
    assert s["precision"] >= 0.95 and s["recall"] >= 0.85, s


def test_scan_matches_sqlite_vec(library):
    box, x, _, _ = library
    with box.db.reader() as conn:
        q = x[:40]
        a_ids, a_d = scan_neighbours(conn, face_table(DIM), q, 16, 0.5)
        b_ids, b_d = neighbours_for(conn, DIM)(q[:5], 16, 0.5)  # 5 queries: one vec0 KNN each
    assert (a_ids[:5] == b_ids).mean() > 0.98
    assert np.allclose(np.where(np.isfinite(a_d[:5]), a_d[:5], 9), np.where(np.isfinite(b_d), b_d, 9), atol=1e-4)


def test_recluster_all_reads_the_graph_and_rebuilds_what_deletions_spoil(library):
    box, x, _, face_of = library
    stats = recluster_all(box)
    assert stats["faces"] == len(x) and stats["queried"] == 0
    # Delete a photo: lists that held its faces and were full may miss their new k-th.
    with box.db.reader() as conn:
        asset, = conn.execute("SELECT asset_id FROM faces GROUP BY asset_id ORDER BY count(*) DESC LIMIT 1").fetchone()
        gone = {f for (f,) in conn.execute("SELECT id FROM faces WHERE asset_id = ?", (asset,))}
        before = stored_lists(conn)
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM assets WHERE id = ?", (asset,))
    spoiled = {f for f, ids in before.items() if f not in gone and ids & gone and len(ids) >= KEEP}
    stats = recluster_all(box)
    assert stats["faces"] == len(x) - len(gone)
    assert stats["queried"] == len(spoiled)
    with box.db.reader() as conn:
        after = stored_lists(conn)
        # The deleted faces' vectors are gone too (vec0 rows are not cascaded).
        left = conn.execute(f"SELECT count(*) FROM {face_table(DIM)}").fetchone()[0]
    assert left == len(x) - len(gone)
    keep = [r for r, f in enumerate(face_of) if f not in gone]
    # Short lists still name the deleted faces (dropped when read); the rest is exact again.
    assert {f: ids - gone for f, ids in after.items()} == exact_lists(x[keep], [face_of[r] for r in keep])
    assert recluster_all(box)["queried"] == 0


def test_recluster_all_builds_the_graph_of_an_older_library(library):
    """A library from before the graph (no lists): queried once, stored, then read."""
    box, x, _, _ = library
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM face_neighbours")
    first = recluster_all(box)
    assert first["queried"] == len(x)
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM face_neighbours").fetchone()[0] == len(x)
    second = recluster_all(box)
    assert second["queried"] == 0 and second["changed"] == 0
