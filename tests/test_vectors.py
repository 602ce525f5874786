"""The embedding store and vector search (photobox.search.vectors) on real database files."""

from __future__ import annotations

import shutil
import time

import apsw
import numpy as np
import pytest

from photobox.db import Database, connect, migrate, schema_version
from photobox.db.migrate import MIGRATIONS_DIR, available
from photobox.library.assets import insert_asset
from photobox.search import vectors

DIM = 48


@pytest.fixture(autouse=True)
def _fresh_mirrors():
    vectors.clear_mirrors()
    vectors.set_memory_limit(None)
    yield
    vectors.clear_mirrors()
    vectors.set_memory_limit(None)
    vectors.set_kernel(None)


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "x.db").open()
    yield database
    database.close()


def add_assets(db: Database, n: int, **columns) -> list[int]:
    ids = []
    with db.transaction() as conn:
        start = conn.execute("SELECT coalesce(max(id), 0) FROM assets").fetchone()[0]
        for i in range(start, start + n):
            asset_id = insert_asset(conn, library_id=1, rel_path=f"p/{i}.jpg", original_name=f"{i}.jpg",
                                    checksum=i.to_bytes(20, "big"), size=1, mtime=1_600_000_000 + i, kind="image",
                                    now=1_700_000_000.0)
            if columns:
                sets = ", ".join(f"{c} = ?" for c in columns)
                conn.execute(f"UPDATE assets SET {sets} WHERE id = ?", (*columns.values(), asset_id))
            ids.append(asset_id)
    return ids


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, clusters: int = 20) -> np.ndarray:
    centres = unit(rng.standard_normal((clusters, dim)))
    return unit(centres[rng.integers(0, clusters, n)] + 0.5 / np.sqrt(dim) * rng.standard_normal((n, dim)))


def exact(ids: list[int], mat: np.ndarray, q: np.ndarray, k: int, allowed=None, min_score=None):
    ids_arr = np.asarray(ids)
    scores = unit(mat) @ unit(q)
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids_arr, list(allowed))
    if min_score is not None:
        keep &= scores >= min_score
    order = np.argsort(-scores[keep], kind="stable")[:k]
    return [int(i) for i in ids_arr[keep][order]], scores[keep][order]


def active_with(db: Database, ids: list[int], mat: np.ndarray, model: str = "clip-a") -> int:
    """An active space holding these vectors (other assets may still lack one)."""
    with db.transaction() as conn:
        space_id = vectors.create_space(conn, model, mat.shape[1])
        vectors.upsert_many(conn, space_id, ids, mat)
        vectors.activate(conn, space_id, force=True)
    return space_id


# -- schema ----------------------------------------------------------------------------


def test_migration_applies_on_top_of_0003(tmp_path):
    older = tmp_path / "upto3"
    older.mkdir()
    for m in available()[:3]:
        shutil.copy(m.path, older / m.path.name)
    conn = connect(tmp_path / "x.db")
    migrate(conn, older)
    assert schema_version(conn) == 3
    conn.execute("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, "
                 "created_at, updated_at) VALUES (1, 'a.jpg', 'a.jpg', x'00', 1, 0, 'image', 0, 0, 0)")
    applied = migrate(conn, MIGRATIONS_DIR)
    assert 4 in [m.version for m in applied]
    assert schema_version(conn) >= 4
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"embedding_spaces", "embedding_entries", "assets_embeddings_orphaned"} <= names
    # The existing asset survived and can get a vector.
    space_id = vectors.create_space(conn, "m", 4)
    vectors.upsert(conn, space_id, 1, [1, 0, 0, 0])
    assert vectors.count(conn, space_id) == 1


def test_one_active_and_one_building_space_at_most(db):
    with db.transaction() as conn:
        a = vectors.create_space(conn, "a", 4)
        vectors.activate(conn, a)
        b = vectors.create_space(conn, "b", 4)
        c = vectors.create_space(conn, "c", 8)  # abandons b
        assert vectors.get_space(conn, b).state == "retired"
        assert vectors.building_space(conn).id == c
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (f"vec_space_{b}",)).fetchone() == (0,)
        with pytest.raises(apsw.ConstraintError):
            conn.execute("UPDATE embedding_spaces SET state = 'active' WHERE id = ?", (c,))
        assert vectors.ensure_space(conn, "c", 8).id == c
        assert vectors.ensure_space(conn, "a", 4).id == a


# -- writes and search -----------------------------------------------------------------


def test_upsert_search_delete(db):
    rng = np.random.default_rng(1)
    ids = add_assets(db, 200)
    mat = rng.standard_normal((200, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    with db.reader() as conn:
        assert vectors.count(conn, space_id) == 200
        q = mat[17] + 0.1 * rng.standard_normal(DIM).astype(np.float32)
        hits = vectors.search(conn, space_id, q, 10)
    want_ids, want_scores = exact(ids, mat, q, 10)
    assert [i for i, _ in hits] == want_ids
    assert np.allclose([s for _, s in hits], want_scores, atol=1e-5)
    assert hits[0][0] == ids[17]
    # Database works as well as a connection.
    assert vectors.search(db, space_id, q, 10) == hits

    with db.transaction() as conn:
        vectors.delete(conn, ids[17])
        vectors.upsert(conn, space_id, ids[3], q)  # replace: now the best match, score 1
    hits = vectors.search(db, space_id, q, 10)
    assert ids[17] not in [i for i, _ in hits]
    assert hits[0][0] == ids[3] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    with db.reader() as conn:
        assert vectors.count(conn, space_id) == 199
        assert vectors.get_vector(conn, space_id, ids[17]) is None
        assert np.allclose(vectors.get_vector(conn, space_id, ids[3]), unit(q), atol=1e-6)


def test_rejects_bad_vectors(db):
    ids = add_assets(db, 2)
    with db.transaction() as conn:
        space_id = vectors.create_space(conn, "m", 4)
        with pytest.raises(ValueError, match="dimension"):
            vectors.upsert(conn, space_id, ids[0], [1, 0, 0])
        with pytest.raises(ValueError, match="non-zero"):
            vectors.upsert(conn, space_id, ids[0], [0, 0, 0, 0])
        with pytest.raises(ValueError, match="finite"):
            vectors.upsert(conn, space_id, ids[0], [np.nan, 0, 0, 1])
        with pytest.raises(ValueError):
            vectors.upsert_many(conn, space_id, ids, np.ones((3, 4)))
    with pytest.raises(ValueError, match="dimension"):
        vectors.search(db, space_id, np.ones(5), 3)
    with pytest.raises(vectors.SpaceUnavailable):
        vectors.search(db, 999, np.ones(4), 3)


@pytest.mark.parametrize("kernel", ["numpy", "onnx"])
@pytest.mark.parametrize("data", ["random", "clustered"])
def test_exact_top_k_within_any_filter(db, kernel, data):
    """Tiny, selective and broad filters all get the exact top-k among the allowed ids."""
    vectors.set_kernel(kernel)
    rng = np.random.default_rng(2)
    n = 4000
    ids = add_assets(db, n)
    mat = clustered(rng, n) if data == "clustered" else rng.standard_normal((n, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    centres = mat[rng.integers(0, n, 6)]
    queries = unit(centres + 0.3 / np.sqrt(DIM) * rng.standard_normal(centres.shape))
    filters = {
        "none": None,
        "tiny": set(rng.choice(ids, 7, replace=False).tolist()),
        "selective (0.5%)": set(rng.choice(ids, n // 200, replace=False).tolist()),
        "broad (50%)": set(rng.choice(ids, n // 2, replace=False).tolist()),
        "with unknown ids": set(rng.choice(ids, 300, replace=False).tolist()) | {10**9, 123456789012},
    }
    with db.reader() as conn:
        for name, allowed in filters.items():
            for q in queries:
                for k in (1, 10, 50):
                    got = vectors.search(conn, space_id, q, k,
                                         allowed_ids=None if allowed is None else sorted(allowed))
                    want_ids, want_scores = exact(ids, mat, q, k, allowed)
                    assert [i for i, _ in got] == want_ids, (name, k)
                    assert np.allclose([s for _, s in got], want_scores, atol=1e-5)
        # allowed ids may come as any iterable, or a numpy array.
        q = queries[0]
        allowed = filters["selective (0.5%)"]
        as_list = vectors.search(conn, space_id, q, 5, allowed_ids=sorted(allowed))
        assert vectors.search(conn, space_id, q, 5, allowed_ids=iter(allowed)) == as_list
        assert vectors.search(conn, space_id, q, 5, allowed_ids=np.array(sorted(allowed))) == as_list
        assert vectors.search(conn, space_id, q, 5, allowed_ids=[]) == []
    assert vectors.mirror_stats()[0]["kernel"] == kernel


def test_min_score_cut_off(db):
    rng = np.random.default_rng(3)
    ids = add_assets(db, 500)
    mat = rng.standard_normal((500, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    q = mat[0] + 0.5 * rng.standard_normal(DIM).astype(np.float32)
    all_scores = np.sort(unit(mat) @ unit(q))[::-1]
    cut = float(all_scores[4] - 1e-4)  # exactly five pass
    hits = vectors.search(db, space_id, q, 50, min_score=cut)
    assert len(hits) == 5 and all(s >= cut for _, s in hits)
    assert [i for i, _ in hits] == exact(ids, mat, q, 50, min_score=cut)[0]
    assert vectors.search(db, space_id, q, 50, min_score=1.01) == []
    # Within a filter too.
    allowed = [ids[i] for i in range(0, 500, 3)]
    hits = vectors.search(db, space_id, q, 50, allowed_ids=allowed, min_score=0.1)
    assert [i for i, _ in hits] == exact(ids, mat, q, 50, allowed, min_score=0.1)[0]


def test_more_like(db):
    rng = np.random.default_rng(4)
    ids = add_assets(db, 300)
    mat = clustered(rng, 300)
    space_id = active_with(db, ids[:299], mat[:299])
    hits = vectors.more_like(db, space_id, ids[5], 8)
    assert ids[5] not in [i for i, _ in hits] and len(hits) == 8
    want = [i for i in exact(ids[:299], mat[:299], mat[5], 9)[0] if i != ids[5]][:8]
    assert [i for i, _ in hits] == want
    assert vectors.more_like(db, space_id, ids[299], 8) == []  # no vector yet


# -- spaces ----------------------------------------------------------------------------


def test_building_space_does_not_affect_search_until_activated(db):
    rng = np.random.default_rng(5)
    ids = add_assets(db, 120)
    old = rng.standard_normal((120, DIM)).astype(np.float32)
    a = active_with(db, ids, old, "clip-a")
    q = old[7]
    before = vectors.search(db, a, q, 5)

    new = rng.standard_normal((120, 2 * DIM)).astype(np.float32)  # another model, another dimension
    with db.transaction() as conn:
        b = vectors.create_space(conn, "clip-b", 2 * DIM)
        vectors.upsert_many(conn, b, ids[:100], new[:100])
    with db.reader() as conn:
        assert vectors.active_space(conn).id == a
        assert vectors.building_space(conn).id == b
        assert vectors.search(conn, a, q, 5) == before
        assert vectors.missing_assets(conn, b, 1000) == sorted(ids[100:], reverse=True)
        assert vectors.missing_assets(conn, a, 1000) == []
    with db.transaction() as conn, pytest.raises(vectors.IncompleteSpaceError):
        vectors.activate(conn, b)
    with db.reader() as conn:
        assert vectors.active_space(conn).id == a

    with db.transaction() as conn:
        vectors.upsert_many(conn, b, ids[100:], new[100:])
        vectors.activate(conn, b)
    with db.reader() as conn:
        assert vectors.active_space(conn).id == b
        assert vectors.get_space(conn, a).state == "retired"
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (f"vec_space_{a}",)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM embedding_entries WHERE space_id = ?", (a,)).fetchone() == (0,)
        with pytest.raises(vectors.SpaceUnavailable):
            vectors.search(conn, a, q, 5)
        hits = vectors.search(conn, b, new[9], 5)
    assert hits[0][0] == ids[9]
    assert [s["space_id"] for s in vectors.mirror_stats()] == [b]  # the retired space's mirror is gone


def test_first_space_can_be_activated_early(db):
    ids = add_assets(db, 3)
    with db.transaction() as conn:
        space_id = vectors.create_space(conn, "m", 4)
        vectors.upsert(conn, space_id, ids[0], [1, 0, 0, 0])
        with pytest.raises(vectors.IncompleteSpaceError):
            vectors.activate(conn, space_id)
        vectors.activate(conn, space_id, force=True)
        assert vectors.active_space(conn).id == space_id


def test_missing_assets(db):
    ids = add_assets(db, 10)
    trashed = add_assets(db, 1, trashed_at=1.0)
    motion = add_assets(db, 1, motion_of=ids[0])
    with db.transaction() as conn:
        space_id = vectors.create_space(conn, "m", 4)
        vectors.upsert_many(conn, space_id, ids[:4], np.eye(4))
        assert vectors.missing_assets(conn, space_id, 100) == ids[4:][::-1]
        assert trashed[0] not in vectors.missing_assets(conn, space_id, 100)
        assert motion[0] not in vectors.missing_assets(conn, space_id, 100)
        first = vectors.missing_assets(conn, space_id, 3)
        assert first == [ids[9], ids[8], ids[7]]
        assert vectors.missing_assets(conn, space_id, 3, before_id=first[-1]) == [ids[6], ids[5], ids[4]]
        vectors.delete(conn, ids[0])
        assert ids[0] in vectors.missing_assets(conn, space_id, 100)


def test_deleted_asset_leaves_search_and_its_reused_id_gets_embedded(db):
    rng = np.random.default_rng(6)
    ids = add_assets(db, 50)
    mat = rng.standard_normal((50, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    last = ids[-1]
    assert vectors.search(db, space_id, mat[-1], 1)[0][0] == last  # the mirror is built
    with db.transaction() as conn:
        conn.execute("DELETE FROM assets WHERE id = ?", (last,))
    assert last not in [i for i, _ in vectors.search(db, space_id, mat[-1], 50)]
    # SQLite hands the largest id out again: the new asset must not inherit the old vector.
    (reused,) = add_assets(db, 1)
    assert reused == last
    with db.reader() as conn:
        assert vectors.missing_assets(conn, space_id, 10) == [reused]
        assert vectors.get_vector(conn, space_id, reused) is None
        assert vectors.count(conn, space_id) == 49
    vectors.clear_mirrors()  # a fresh mirror skips the unswept vector too
    assert reused not in [i for i, _ in vectors.search(db, space_id, mat[-1], 50)]
    with db.transaction() as conn:
        assert vectors.sweep(conn) == 1
        assert vectors.sweep(conn) == 0
        assert conn.execute(f"SELECT count(*) FROM vec_space_{space_id}").fetchone() == (49,)
        vectors.upsert(conn, space_id, reused, mat[0])
    assert vectors.search(db, space_id, mat[0], 2)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert {i for i, _ in vectors.search(db, space_id, mat[0], 2)} == {ids[0], reused}


# -- the mirror ------------------------------------------------------------------------


def test_mirror_follows_writes_of_this_and_other_connections(db, tmp_path):
    rng = np.random.default_rng(7)
    ids = add_assets(db, 1000)
    mat = rng.standard_normal((1000, DIM)).astype(np.float32)
    space_id = active_with(db, ids[:800], mat[:800])
    q = mat[900]
    assert ids[900] not in [i for i, _ in vectors.search(db, space_id, q, 5)]
    (stats,) = vectors.mirror_stats()
    assert stats["vectors"] == 800 and stats["bytes"] >= 800 * (DIM + 12)

    with db.transaction() as conn:  # this process's writer
        vectors.upsert_many(conn, space_id, ids[800:], mat[800:])
        vectors.delete(conn, ids[1])
        vectors.upsert(conn, space_id, ids[2], -q)  # now the worst match
    hits = vectors.search(db, space_id, q, 1000)
    assert hits[0][0] == ids[900] and hits[-1][0] == ids[2]
    assert ids[1] not in [i for i, _ in hits] and len(hits) == 999
    assert vectors.mirror_stats()[0]["vectors"] == 999

    other = Database(tmp_path / "x.db").open()  # as another process would write
    try:
        with other.transaction() as conn:
            vectors.upsert(conn, space_id, ids[1], q)
            vectors.delete(conn, ids[900])
    finally:
        other.close()
    hits = vectors.search(db, space_id, q, 3)
    assert hits[0][0] == ids[1] and ids[900] not in [i for i, _ in hits]
    want = exact([i for i in ids if i != ids[900]], np.delete(np.vstack([mat[:1], q[None], -q[None], mat[3:]]),
                                                                 900, axis=0), q, 3)[0]
    assert [i for i, _ in hits] == want


def test_uncommitted_writes_are_seen_by_their_transaction_only_and_never_leak(db):
    rng = np.random.default_rng(8)
    ids = add_assets(db, 100)
    mat = rng.standard_normal((100, DIM)).astype(np.float32)
    space_id = active_with(db, ids[:90], mat[:90])
    q = mat[95]
    vectors.search(db, space_id, q, 3)  # build the mirror

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), db.transaction() as conn:
        vectors.upsert(conn, space_id, ids[95], q)
        assert vectors.search(conn, space_id, q, 1)[0][0] == ids[95]  # its own write
        with db.reader() as other:
            assert vectors.search(other, space_id, q, 1)[0][0] != ids[95]  # not committed
        raise Rollback
    assert ids[95] not in [i for i, _ in vectors.search(db, space_id, q, 10)]
    with db.transaction() as conn:
        vectors.upsert(conn, space_id, ids[96], q)  # reuses the rolled-back version number
    assert vectors.search(db, space_id, q, 1)[0][0] == ids[96]


def test_memory_limit_falls_back_to_exact_sqlite_search(db):
    rng = np.random.default_rng(9)
    ids = add_assets(db, 5000)
    mat = rng.standard_normal((5000, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    vectors.set_memory_limit(1000)
    q = mat[10]
    allowed_big = ids[::2]
    allowed_small = ids[::100]
    with db.reader() as conn:
        assert vectors.warm(conn, space_id) is None
        assert [i for i, _ in vectors.search(conn, space_id, q, 20)] == exact(ids, mat, q, 20)[0]
        for allowed in (allowed_big, allowed_small):
            got = vectors.search(conn, space_id, q, 20, allowed_ids=allowed)
            assert [i for i, _ in got] == exact(ids, mat, q, 20, allowed)[0]
    assert [s["state"] for s in vectors.mirror_stats()] == ["too big"]
    vectors.set_memory_limit(None)
    stats = vectors.warm(db, space_id)
    assert stats["vectors"] == 5000 and stats["state"] == "ready"
    assert stats["bytes"] < 5000 * (DIM + 16) * 1.1 + 4 * 5001


def test_big_space_is_mirrored_in_the_background_and_searched_in_sqlite_meanwhile(db, monkeypatch):
    monkeypatch.setattr(vectors, "SYNC_BUILD_MAX", 100)
    rng = np.random.default_rng(11)
    ids = add_assets(db, 2000)
    mat = rng.standard_normal((2000, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    q = mat[42]
    want = exact(ids, mat, q, 10)[0]
    # The first search starts the build and is answered exactly by SQLite; so may the next.
    assert [i for i, _ in vectors.search(db, space_id, q, 10)] == want
    deadline = time.monotonic() + 30
    while not any(s["state"] == "ready" for s in vectors.mirror_stats()):
        assert time.monotonic() < deadline
        assert [i for i, _ in vectors.search(db, space_id, q, 10, allowed_ids=ids[::2])] == \
            exact(ids, mat, q, 10, ids[::2])[0]
        time.sleep(0.01)
    assert [i for i, _ in vectors.search(db, space_id, q, 10)] == want
    (stats,) = vectors.mirror_stats()
    assert stats["vectors"] == 2000
    # Many changes at once: the mirror is rebuilt rather than patched vector by vector.
    monkeypatch.setattr(vectors, "SYNC_MAX_CHANGES", 10)
    with db.transaction() as conn:
        vectors.upsert_many(conn, space_id, ids[:1000], -mat[:1000])
    hits = vectors.search(db, space_id, -q, 10)
    assert hits[0][0] == ids[42]
    assert vectors.warm(db, space_id)["vectors"] == 2000
    assert [i for i, _ in vectors.search(db, space_id, -q, 10)] == [i for i, _ in hits]


def test_the_mirror_build_ignores_the_request_time_limit(db):
    """A request's query time limit applies to its own statements, not to building the mirror."""
    ids = add_assets(db, 3000)
    mat = np.random.default_rng(12).standard_normal((3000, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    with db.reader() as conn:
        calls = [0]

        def budget() -> bool:  # interrupt after ~20k VM steps: far less than reading 3000 vectors
            calls[0] += 1
            return calls[0] > 20

        conn.set_progress_handler(budget, 1000)
        try:
            hits = vectors.search(conn, space_id, mat[0], 3)
        finally:
            conn.set_progress_handler(None)
    assert hits[0][0] == ids[0]
    assert vectors.mirror_stats()[0]["vectors"] == 3000


def test_near_duplicates_and_ties(db):
    """Hundreds of identical vectors (burst shots): results are still the best scores."""
    rng = np.random.default_rng(13)
    ids = add_assets(db, 1500)
    mat = rng.standard_normal((1500, DIM)).astype(np.float32)
    mat[:600] = mat[0]
    mat[600:700] = mat[0] + 1e-4 * rng.standard_normal((100, DIM)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    for k in (5, 50, 700):
        hits = vectors.search(db, space_id, mat[0], k)
        want_scores = exact(ids, mat, mat[0], k)[1]
        assert len(hits) == k
        assert np.allclose([s for _, s in hits], want_scores, atol=1e-5)
        assert len({i for i, _ in hits}) == k


def test_delete_removes_the_asset_from_every_space(db):
    ids = add_assets(db, 4)
    with db.transaction() as conn:
        a = vectors.create_space(conn, "a", 4)
        vectors.upsert_many(conn, a, ids, np.eye(4))
        vectors.activate(conn, a)
        b = vectors.create_space(conn, "b", 3)
        vectors.upsert_many(conn, b, ids, np.ones((4, 3)) + np.arange(4)[:, None] * 0.1)
        vectors.delete(conn, ids[2])
        assert vectors.count(conn, a) == vectors.count(conn, b) == 3
        assert vectors.missing_assets(conn, a, 10) == vectors.missing_assets(conn, b, 10) == [ids[2]]
        vectors.delete(conn, ids[2])  # twice is fine
    assert ids[2] not in [i for i, _ in vectors.search(db, a, [0, 0, 1, 0], 4)]
