"""The shared int8 vector index (photobox.vectors): one memory budget for the CLIP and face
mirrors of a process, on real database files, and the package's place below the features."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from photobox.db import Database
from photobox.people import knn as face_knn
from photobox.people.faces_job import ensure_face_table
from photobox.search import vectors
from photobox.vectors import Mirror, clear_mirrors, mirror_stats, registry, set_memory_limit
from tests.test_vectors import active_with, add_assets, exact

ROOT = Path(__file__).resolve().parents[1]
FACE_DIM = 128


@pytest.fixture(autouse=True)
def _fresh():
    clear_mirrors()
    set_memory_limit(None)
    yield
    clear_mirrors()
    set_memory_limit(None)


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "x.db").open()
    yield database
    database.close()


def _library(db: Database, n: int = 2000) -> tuple[list[int], np.ndarray, int, np.ndarray]:
    """CLIP vectors of ``n`` assets in an active space, and ``n`` face vectors, in one database."""
    rng = np.random.default_rng(1)
    ids = add_assets(db, n)
    mat = rng.standard_normal((n, 48)).astype(np.float32)
    space_id = active_with(db, ids, mat)
    faces = rng.standard_normal((n, FACE_DIM)).astype(np.float32)
    with db.transaction() as conn:
        table = ensure_face_table(conn, FACE_DIM)
        conn.executemany(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)",
                         ((1 + i, v.tobytes()) for i, v in enumerate(faces)))
    return ids, mat, space_id, faces


def _states() -> dict[str, str]:
    return {s["kind"]: s["state"] for s in mirror_stats()}


def test_clip_and_face_mirrors_share_one_budget(db, monkeypatch):
    ids, mat, space_id, faces = _library(db)
    clip_bytes = vectors.warm(db, space_id)["bytes"]
    face_need = Mirror.estimate(len(faces), FACE_DIM, len(faces))
    set_memory_limit(clip_bytes + face_need - 1000)  # room for either, not for both
    q = mat[7]
    with db.reader() as conn:
        assert [i for i, _ in vectors.search(conn, space_id, q, 10)] == exact(ids, mat, q, 10)[0]
        # The CLIP mirror was used just now: it stays, and the faces ask sqlite-vec (exact, slower).
        assert face_knn.knn(conn, FACE_DIM, faces[3], 5) is None
        assert _states() == {"clip": "ready", "faces": "too big"}
        assert [i for i, _ in vectors.search(conn, space_id, q, 10)] == exact(ids, mat, q, 10)[0]
        assert face_knn.knn(conn, FACE_DIM, faces[3], 5) is None  # refused: not tried again at once
        # Once the refusal is old and the CLIP mirror idle, the faces get the room.
        monkeypatch.setattr(registry, "RETRY_SECONDS", 0.0)
        monkeypatch.setattr(registry, "IDLE_SECONDS", 0.0)
        got = face_knn.knn(conn, FACE_DIM, faces[3], 5)
        assert got is not None and got[0][0] == 4
        assert _states() == {"faces": "ready"}
        # And the other way round: search gets its mirror back, exact as ever.
        assert [i for i, _ in vectors.search(conn, space_id, q, 10)] == exact(ids, mat, q, 10)[0]
        assert _states() == {"clip": "ready"}
    assert sum(s["bytes"] for s in mirror_stats()) <= clip_bytes + face_need - 1000


def test_a_clip_mirror_that_outgrows_the_budget_is_dropped(db):
    rng = np.random.default_rng(2)
    ids = add_assets(db, 4000)
    mat = rng.standard_normal((4000, 48)).astype(np.float32)
    space_id = active_with(db, ids[:1000], mat[:1000])
    set_memory_limit(vectors.warm(db, space_id)["bytes"] + 1000)
    with db.transaction() as conn:
        vectors.upsert_many(conn, space_id, ids[1000:], mat[1000:])
    q = mat[2500]
    assert [i for i, _ in vectors.search(db, space_id, q, 10)] == exact(ids, mat, q, 10)[0]  # from SQLite
    assert [s["state"] for s in vectors.mirror_stats()] == ["too big"]


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from photobox... import name`` and ``import photobox...`` in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("photobox"):
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.startswith("photobox")]
    return out


def test_the_index_package_stands_below_the_features_and_nobody_uses_its_privates():
    package = ROOT / "photobox" / "vectors"
    for path in package.glob("*.py"):
        for module, _ in _imports(path):
            assert module.startswith(("photobox.vectors", "photobox.db")), (path.name, module)
    index_modules = ("photobox.vectors", "photobox.search.vectors", "photobox.people.knn")
    for path in (ROOT / "photobox").rglob("*.py"):
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for module, name in _imports(path):
            if module.startswith(index_modules) and module.split(".")[1] != own.split(".")[1]:
                assert not name.startswith("_"), f"{own} imports the private {module}.{name}"
