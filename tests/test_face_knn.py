"""The face KNN mirror (photobox.people.knn) answers exactly what the vec0 query answers."""

from __future__ import annotations

import numpy as np
import pytest

from photobox.db import connect, migrate
from photobox.people import knn as face_knn
from photobox.people.faces_job import ensure_face_table, face_table, neighbours_for

DIM = 128
K = 65


@pytest.fixture(autouse=True)
def _fresh():
    face_knn.clear()
    face_knn.set_enabled(True)
    face_knn.set_memory_limit(None)
    yield
    face_knn.clear()
    face_knn.set_enabled(True)
    face_knn.set_memory_limit(None)


def _db(tmp_path, x: np.ndarray, start: int = 1):
    conn = connect(tmp_path / "photobox.db")
    migrate(conn)
    with conn:
        table = ensure_face_table(conn, DIM)
        conn.executemany(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)",
                         ((start + i, v.tobytes()) for i, v in enumerate(x)))
    return conn


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Face-like data: people (tight groups) plus noise, so near-ties and close neighbours occur."""
    centres = rng.standard_normal((max(1, n // 20), DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x.astype(np.float32)


def _vec0(conn, q: np.ndarray, k: int):
    rows = conn.execute(f"SELECT face_id, distance FROM {face_table(DIM)} WHERE embedding MATCH ? AND k = ? "
                        "ORDER BY distance", (q.astype(np.float32).tobytes(), k)).fetchall()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32)


def _same(conn, queries: np.ndarray, k: int = K) -> None:
    for q in queries:
        got = face_knn.knn(conn, DIM, q, k)
        assert got is not None, "the mirror was expected to answer"
        ids, d = got
        want_ids, want_d = _vec0(conn, q, k)
        _equal(ids, d, want_ids, want_d)


def _equal(ids, d, want_ids, want_d) -> None:
    """Same distances bit for bit; same ids except in the order of (or the cut through) exact ties."""
    np.testing.assert_array_equal(d, want_d)
    assert len(ids) == len(want_ids)
    last = want_d[-1] if len(want_d) else 0
    inside = want_d < last
    assert set(ids[inside].tolist()) == set(want_ids[inside].tolist())
    for dist in np.unique(want_d[inside]):
        assert set(ids[d == dist].tolist()) == set(want_ids[want_d == dist].tolist())


@pytest.mark.parametrize("n", [1, 50, 3000, 20000])
def test_same_as_vec0_at_several_sizes(tmp_path, n):
    rng = np.random.default_rng(n)
    x = _clustered(rng, n)
    conn = _db(tmp_path, x)
    queries = np.concatenate([x[rng.choice(n, min(n, 15), replace=False)], _clustered(rng, 5)])
    _same(conn, queries)
    assert face_knn.mirror_stats()[0]["faces"] == n


def test_after_adding_and_deleting(tmp_path):
    rng = np.random.default_rng(7)
    x = _clustered(rng, 4000)
    conn = _db(tmp_path, x)
    _same(conn, x[:5])  # builds the mirror
    table = face_table(DIM)
    more = _clustered(rng, 300)
    with conn:
        conn.executemany(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)",
                         ((5001 + i, v.tobytes()) for i, v in enumerate(more)))
    _same(conn, np.concatenate([more[:5], x[5:10]]))
    assert face_knn.mirror_stats()[0]["faces"] == 4300  # caught up without a rebuild
    # Delete the nearest neighbours of some queries (and the newest face): answers follow.
    gone = set()
    for q in x[10:14]:
        gone.update(_vec0(conn, q, 5)[0].tolist())
    gone.add(5300)
    with conn:
        for fid in gone:
            conn.execute(f"DELETE FROM {table} WHERE face_id = ?", (fid,))
    _same(conn, x[10:20])
    assert 4300 - len(gone) <= face_knn.mirror_stats()[0]["faces"] < 4300  # the deleted candidates left it
    # A deleted id inserted again with another vector, after forget() (what recluster_all does).
    face_knn.forget(conn, DIM)
    with conn:
        conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)", (5300, x[10].tobytes()))
    _same(conn, x[10:12])
    assert 5300 in face_knn.knn(conn, DIM, x[10], 3)[0].tolist()


def test_uncommitted_rows_are_seen_and_rollback_leaves_nothing(tmp_path):
    rng = np.random.default_rng(3)
    x = _clustered(rng, 2000)
    conn = _db(tmp_path, x)
    _same(conn, x[:2])
    table = face_table(DIM)
    new = x[0] + 0.01
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)", (9999, new.tobytes()))
    # The faces job queries inside its transaction: the new face is its own nearest.
    ids, d = face_knn.knn(conn, DIM, new, K)
    assert ids[0] == 9999 and d[0] < 1e-5
    _same(conn, [new, x[1]])
    conn.execute("ROLLBACK")
    _same(conn, [new, x[1]])
    assert 9999 not in face_knn.knn(conn, DIM, new, K)[0].tolist()
    assert face_knn.mirror_stats()[0]["faces"] == 2000


def test_other_connection_commits_are_followed(tmp_path):
    rng = np.random.default_rng(5)
    x = _clustered(rng, 1500)
    conn = _db(tmp_path, x)
    reader = connect(tmp_path / "photobox.db", readonly=True)
    _same(reader, x[:3])
    with conn:
        conn.execute(f"INSERT INTO {face_table(DIM)} (face_id, embedding) VALUES (?, ?)",
                     (7777, (x[2] * 1.5).tobytes()))
    _same(reader, x[2:4])
    assert face_knn.knn(reader, DIM, x[2], 2)[0].tolist()[:2] in ([3, 7777], [7777, 3])


def test_memory_limit_and_disabled_fall_back_to_vec0(tmp_path):
    rng = np.random.default_rng(9)
    x = _clustered(rng, 1000)
    conn = _db(tmp_path, x)
    face_knn.set_memory_limit(10_000)
    assert face_knn.knn(conn, DIM, x[0], K) is None
    assert face_knn.mirror_stats() == []
    face_knn.set_memory_limit(None)
    face_knn.set_enabled(False)
    assert face_knn.knn(conn, DIM, x[0], K) is None
    face_knn.set_enabled(True)
    # The clustering callback answers the same either way.
    fn = neighbours_for(conn, DIM)
    with_mirror = fn(x[:5], K, 0.6)
    face_knn.set_enabled(False)
    without = fn(x[:5], K, 0.6)
    for row in range(5):
        _equal(with_mirror[0][row], with_mirror[1][row], without[0][row], without[1][row])


def test_memory_per_face(tmp_path):
    rng = np.random.default_rng(11)
    conn = _db(tmp_path, _clustered(rng, 5000))
    face_knn.knn(conn, DIM, np.ones(DIM, np.float32), 5)
    (stats,) = face_knn.mirror_stats()
    assert stats["faces"] == 5000
    assert stats["bytes"] <= 5000 * 1.3 * (DIM + 12)  # int8 codes + a scale + an id, some headroom


def test_table_created_in_an_open_transaction(tmp_path):
    """The faces job creates the table and queries it before committing: vec0 answers then."""
    conn = connect(tmp_path / "photobox.db")
    migrate(conn)
    v = np.ones(DIM, np.float32)
    conn.execute("BEGIN IMMEDIATE")
    table = ensure_face_table(conn, DIM)
    conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (1, ?)", (v.tobytes(),))
    assert face_knn.knn(conn, DIM, v, 5) is None
    ids, _ = neighbours_for(conn, DIM)(v[None], 5, 0.5)
    assert ids[0, 0] == 1
    conn.execute("COMMIT")
    ids, d = face_knn.knn(conn, DIM, v, 5)
    assert ids.tolist() == [1] and d[0] < 1e-6


def test_distances_are_vec0s_bit_for_bit(tmp_path):
    rng = np.random.default_rng(13)
    conn = connect(tmp_path / "x.db")
    for dim in (3, 128, 512):
        x = (rng.standard_normal((300, dim)) * rng.uniform(0.01, 50, (300, 1))).astype(np.float32)
        q = rng.standard_normal(dim).astype(np.float32)
        want = [conn.execute("SELECT vec_distance_cosine(?, ?)", (v.tobytes(), q.tobytes())).fetchone()[0] for v in x]
        np.testing.assert_array_equal(face_knn.vec0_cosine_distance(x, q), np.asarray(want, np.float32))


def test_duplicates_tie_and_both_come_back(tmp_path):
    """Duplicate photos give faces at exactly the same distance: all of them are found."""
    rng = np.random.default_rng(17)
    x = _clustered(rng, 3000)
    x[100:110] = x[5]
    conn = _db(tmp_path, x)
    ids, d = face_knn.knn(conn, DIM, x[5], 11)
    assert set(ids[:11].tolist()) == {6} | set(range(101, 111))
    assert np.all(d == d[0])
    _same(conn, [x[5], x[7]])


def test_big_table_is_built_in_the_background(tmp_path, monkeypatch):
    rng = np.random.default_rng(19)
    x = _clustered(rng, 2000)
    conn = _db(tmp_path, x)
    monkeypatch.setattr(face_knn, "SYNC_BUILD_MAX", 100)
    first = face_knn.knn(conn, DIM, x[0], K)  # vec0 answers while the mirror is built
    assert face_knn.warm(conn, DIM)
    _same(conn, x[:3])
    assert first is None or first[0][0] == 1


def test_mirror_that_outgrows_the_limit_is_dropped(tmp_path):
    rng = np.random.default_rng(23)
    x = _clustered(rng, 1000)
    conn = _db(tmp_path, x)
    _same(conn, x[:2])
    face_knn.set_memory_limit(face_knn.mirror_stats()[0]["bytes"] + 1000)
    more = _clustered(rng, 3000)
    with conn:
        conn.executemany(f"INSERT INTO {face_table(DIM)} (face_id, embedding) VALUES (?, ?)",
                         ((2000 + i, v.tobytes()) for i, v in enumerate(more)))
    assert face_knn.knn(conn, DIM, x[0], K) is None
    assert face_knn.mirror_stats() == []
    ids, _ = neighbours_for(conn, DIM)(x[:1], K, 0.6)  # vec0 still answers
    assert ids[0, 0] == 1


def test_least_recently_used_mirrors_make_room(tmp_path):
    rng = np.random.default_rng(29)
    x = _clustered(rng, 300)
    conns = []
    for i in range(face_knn.MAX_MIRRORS + 2):
        (tmp_path / str(i)).mkdir()
        conns.append(_db(tmp_path / str(i), x))
        _same(conns[-1], x[:1])
    assert len(face_knn.mirror_stats()) == face_knn.MAX_MIRRORS
    _same(conns[0], x[:2])  # an evicted one is built again


def test_place_face_and_recluster_give_the_same_people_with_and_without_the_mirror(tmp_path):
    """The faces stage end to end (rows, vectors, place_face, stored graph, full re-cluster):
    the mirror changes nothing but the speed."""
    import importlib.util
    from pathlib import Path

    from photobox.core import Photobox
    from photobox.people.faces_job import recluster_all
    from photobox.settings import load_settings

    spec = importlib.util.spec_from_file_location("test_face_graph", Path(__file__).with_name("test_face_graph.py"))
    graph_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph_tests)
    x, _ = graph_tests.bench.make_scenario("library", np.random.default_rng(5), 0.5)
    results = []
    for on in (False, True):
        face_knn.set_enabled(on)
        box = Photobox(load_settings({"data_dir": tmp_path / f"data{on}", "workers": 2}, env={})).open()
        try:
            graph_tests.add_photos(box, x, np.random.default_rng(6))
            with box.db.reader() as conn:
                placed = conn.execute("SELECT id, person_id FROM faces ORDER BY id").fetchall()
                lists = conn.execute("SELECT face_id, ids, distances FROM face_neighbours ORDER BY face_id").fetchall()
            if on:
                assert face_knn.mirror_stats()[0]["faces"] > len(x) - 10, "the mirror was used"
            recluster_all(box)
            with box.db.reader() as conn:
                final = conn.execute("SELECT id, person_id FROM faces ORDER BY id").fetchall()
            results.append((placed, lists, final))
        finally:
            box.close()
    (placed0, lists0, final0), (placed1, lists1, final1) = results
    assert placed1 == placed0
    assert lists1 == lists0  # the stored neighbour lists, distances bit for bit
    assert final1 == final0


def test_face_id_given_out_again_after_its_photo_was_deleted(tmp_path):
    """vec0 rows are not cascaded: when the photo with the newest faces is deleted, SQLite gives
    the next face the same id. The faces job replaces the left-over vector (the INSERT failed
    before) and the mirror scores that id from SQLite from then on."""
    from photobox.people.faces_job import store_face_vector

    rng = np.random.default_rng(31)
    x = _clustered(rng, 1000)
    conn = connect(tmp_path / "photobox.db")
    migrate(conn)
    with conn:
        for asset in (1, 2):
            conn.execute("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, "
                         "sort_ts, created_at, updated_at) VALUES (1, ?, 'a.jpg', randomblob(8), 1, 0, 'image', "
                         "0, 0, 0)", (f"{asset}.jpg",))
        for i, v in enumerate(x):
            conn.execute("INSERT INTO faces (asset_id, x1, y1, x2, y2, score, model, created_at) "
                         "VALUES (?, 0, 0, 1, 1, 1, 'm', 0)", (1 if i < 990 else 2,))
            store_face_vector(conn, conn.last_insert_rowid(), v)
    _same(conn, x[:2])  # the mirror holds faces 1..1000
    with conn:
        conn.execute("DELETE FROM assets WHERE id = 2")  # faces 991..1000 go; their vectors stay
    far = -x[995]  # a new face unlike the old vector of its id
    with conn:
        conn.execute("INSERT INTO faces (asset_id, x1, y1, x2, y2, score, model, created_at) "
                     "VALUES (1, 0, 0, 1, 1, 1, 'm', 0)")
        fid = conn.last_insert_rowid()
        assert fid == 991
        store_face_vector(conn, fid, far)
        ids, d = face_knn.knn(conn, DIM, far, K)  # uncommitted, inside the transaction
        assert ids[0] == fid and d[0] < 1e-6
    ids, d = face_knn.knn(conn, DIM, far, K)
    assert ids[0] == fid and d[0] < 1e-6
    assert fid not in face_knn.knn(conn, DIM, x[990], K)[0][:3].tolist()
    _same(conn, [far, x[990], x[3]])
