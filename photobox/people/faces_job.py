"""The ``faces`` stage: find faces in a photo's preview, store them with their vectors, and
place each among the people found so far (incremental clustering, :mod:`.cluster`).

Face vectors live in a sqlite-vec table per embedding size (``face_vectors_<dim>``, cosine
distance), queried for nearest neighbours: nothing holds every face of the library in RAM.
Idempotent: ``face_scans`` records what was looked at, with which model; a photo is scanned
once per recogniser.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import apsw
import numpy as np
from PIL import Image

from photobox.db.sql import id_chunks
from photobox.jobs import Job
from photobox.jobs import store as job_store
from photobox.library.assets import NOT_TRASHED
from photobox.library.paths import derived_path
from photobox.people import knn as face_knn
from photobox.people.cluster import DEFAULTS, Constraints, assign_new_face
from photobox.people.graph import (
    GRAPH_DISTANCE,
    GRAPH_K,
    REVERSE_K,
    known_neighbours,
    offer_new_face,
    save_lists,
    scan_neighbours,
)
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["face_table", "neighbours_for", "queue_face_scans", "queue_recluster_when_idle", "recluster_all"]

log = logging.getLogger(__name__)

feature = Feature("people")


def face_table(dim: int) -> str:
    """The vector table of recogniser outputs of ``dim`` dimensions (an integer in the name only)."""
    return f"face_vectors_{int(dim)}"


def ensure_face_table(conn: apsw.Connection, dim: int) -> str:
    table = face_table(dim)
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
                 f"face_id INTEGER PRIMARY KEY, embedding float[{int(dim)}] distance_metric=cosine)")
    return table


def store_face_vector(conn: apsw.Connection, face_id: int, vec: np.ndarray) -> None:
    """Store a new face's vector in ``face_vectors_<dim>`` (created if needed).

    A vector left by a deleted face (vec0 rows are not cascaded with their photo) holds this
    id when the photo with the newest faces was deleted and SQLite gave the id out again:
    it is dropped first (the INSERT would fail), and the face mirror is told.
    """
    table = ensure_face_table(conn, len(vec))
    conn.execute(f"DELETE FROM {table} WHERE face_id = ?", (face_id,))
    if conn.changes():
        face_knn.replaced(conn, len(vec), [face_id])
    conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)", (face_id, vec.tobytes()))


#: From this many queries at once, one block-wise pass over the table (:func:`scan_neighbours`)
#: beats one sqlite-vec KNN per query (each of which scans the whole table too).
SCAN_FROM = 32


def neighbours_for(conn: apsw.Connection, dim: int):
    """The clustering's KNN callback over ``face_vectors_<dim>`` (cosine distance): sqlite-vec
    for a few queries, one block-wise scan of the table for many (same answers)."""
    sql = f"SELECT face_id, distance FROM {face_table(dim)} WHERE embedding MATCH ? AND k = ? ORDER BY distance"

    def neighbours(queries: np.ndarray, k: int, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
        if len(queries) >= SCAN_FROM:
            return scan_neighbours(conn, face_table(dim), queries, k, max_distance)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dists = np.full((len(queries), k), np.inf, dtype=np.float32)
        for row, q in enumerate(np.asarray(queries, dtype=np.float32)):
            # The int8 RAM mirror with exact re-rank (same answers, fast); vec0 when it cannot.
            got = face_knn.knn(conn, dim, q, int(k))
            hits = zip(*got) if got is not None else conn.execute(sql, (q.tobytes(), int(k)))
            for col, (face_id, d) in enumerate(hits):
                if d <= max_distance:
                    ids[row, col], dists[row, col] = face_id, d
        return ids, dists

    return neighbours


def _person_of(conn: apsw.Connection):
    def person_of(face_ids: list[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for chunk, marks in id_chunks(face_ids):
            out.update(conn.execute(f"SELECT id, person_id FROM faces WHERE person_id IS NOT NULL AND id IN ({marks})",
                                    chunk).fetchall())
        return out

    return person_of


def _constraints(conn: apsw.Connection, face_ids: list[int]) -> Constraints:
    rows = []
    for chunk, marks in id_chunks(face_ids):
        rows += conn.execute(f"SELECT face_id, person_id, kind FROM face_constraints WHERE face_id IN ({marks})",
                             chunk).fetchall()
    return Constraints.from_rows(rows)


def place_face(conn: apsw.Connection, face_id: int, vector: np.ndarray, dim: int, *, now: float) -> str:
    """Run incremental clustering for one stored face and write the result; return the action.

    Its one KNN query also keeps the neighbour graph (:mod:`.graph`): the face's own list,
    and its place in the lists of the faces it is near.
    """
    named = {p for (p,) in conn.execute("SELECT id FROM people WHERE name != ''")}
    # One query (k+1: the face itself is in the table) serves the graph and the placement.
    got_ids, got_d = neighbours_for(conn, dim)(np.asarray(vector, np.float32)[None], REVERSE_K + 1, GRAPH_DISTANCE)
    offer_new_face(conn, face_id, got_ids[0], got_d[0])

    def neighbours(queries: np.ndarray, k: int, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
        if k > REVERSE_K + 1 or max_distance > GRAPH_DISTANCE:
            return neighbours_for(conn, dim)(queries, k, max_distance)
        far = got_d[:, :k] > max_distance
        return np.where(far, -1, got_ids[:, :k]), np.where(far, np.inf, got_d[:, :k])

    a = assign_new_face(face_id, vector, neighbours=neighbours, person_of=_person_of(conn),
                        constraints=_constraints(conn, [face_id]), named=named)
    if a.action == "noise":
        return a.action
    person = a.person_id
    if a.action == "new":
        conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('', ?, ?)", (now, now))
        person = conn.last_insert_rowid()
    allowed = _constraints(conn, list(a.faces))
    for fid in a.faces:
        if allowed.allows(fid, person):
            conn.execute("UPDATE faces SET person_id = ? WHERE id = ? AND (person_id IS NULL OR id = ?)",
                         (person, fid, face_id))
    return a.action


def _preview(box: Photobox, asset_id: int) -> Image.Image | None:
    try:
        with Image.open(derived_path(box, "preview", asset_id)) as im:
            return im.convert("RGB")  # previews are upright already
    except FileNotFoundError:
        return None


def _face_models_installed(box: Photobox) -> bool:
    return box.face_models.model_id() is not None


@feature.job("faces", title="Faces", priority=8, after="thumbs", wanted=lambda kind, facts: kind == "image",
             ready=_face_models_installed)
def faces_job(job: Job) -> None:
    box: Photobox = job.context
    asset_id = int(job.target)
    models = box.face_models
    model_id = models.model_id()
    if model_id is None or models.detector() is None:
        return  # no face models installed: people are off
    with box.db.reader() as conn:
        done = conn.execute("SELECT model FROM face_scans WHERE asset_id = ?", (asset_id,)).fetchone()
    if done is not None and done[0] == model_id:
        return
    image = _preview(box, asset_id)
    if image is None:
        return  # no preview (yet): the thumbs stage queues this again when it has made one
    found = models.detect_and_embed(image)
    w, h = image.size
    now = box.clock()
    with box.db.transaction() as conn:
        if conn.execute("SELECT 1 FROM face_scans WHERE asset_id = ? AND model = ?", (asset_id, model_id)).fetchone():
            return
        if conn.execute("SELECT 1 FROM assets WHERE id = ?", (asset_id,)).fetchone() is None:
            return
        new = []
        for face, vector in found:
            x1, y1, x2, y2 = face.box
            marks = [[float(x) / w, float(y) / h] for x, y in np.asarray(face.landmarks).tolist()]
            conn.execute(
                "INSERT INTO faces (asset_id, x1, y1, x2, y2, score, landmarks, model, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (asset_id, x1 / w, y1 / h, x2 / w, y2 / h, float(face.score), json.dumps(marks), model_id, now))
            face_id = conn.last_insert_rowid()
            vec = np.asarray(vector, dtype=np.float32)
            store_face_vector(conn, face_id, vec)
            new.append((face_id, vec))
        conn.execute("INSERT INTO face_scans (asset_id, model, faces, scanned_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (asset_id) DO UPDATE SET model = excluded.model, faces = excluded.faces, "
                     "scanned_at = excluded.scanned_at", (asset_id, model_id, len(new), now))
        for face_id, vec in new:
            place_face(conn, face_id, vec, len(vec), now=now)


@feature.every(300, "face-scans")
async def queue_face_scans(box: Photobox) -> None:
    """Periodic: queue photos with a preview that the current face models have not scanned."""
    import asyncio

    model_id = await asyncio.to_thread(box.face_models.model_id)
    if model_id is None:
        return

    def todo(conn) -> list[int]:
        return [i for (i,) in conn.execute(
            f"SELECT a.id FROM assets a LEFT JOIN face_scans s ON s.asset_id = a.id "
            f"WHERE a.kind = 'image' AND a.thumb_version > 0 AND {NOT_TRASHED} "
            f"AND (s.asset_id IS NULL OR s.model != ?) LIMIT 500", (model_id,))]

    ids = await box.db.read(todo)
    if ids:
        def enqueue(conn) -> None:
            for asset_id in ids:
                job_store.enqueue(conn, "faces", str(asset_id), now=box.clock(), priority=8)
        await box.db.write(enqueue)
        box.scheduler.notify()


# -- full re-cluster ------------------------------------------------------------------------

def _vector_tables(conn: apsw.Connection) -> list[int]:
    import re

    return [int(name.rsplit("_", 1)[1]) for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE name GLOB 'face_vectors_[0-9]*'") if re.fullmatch(r"face_vectors_\d+", name)]


def recluster_all(box: Photobox) -> dict[str, int]:
    """Re-cluster every face from scratch (keeping people's ids, names and every correction).

    Faces stream from SQLite in chunks and each face's neighbours come from the stored graph
    (:mod:`.graph`), or, for faces without a usable list, from a block-wise scan of the
    vectors (and are stored for next time); memory grows with ``k`` × faces, not with the
    embeddings (see :mod:`.cluster`). The result is written in one transaction; people left
    without faces and without a name are removed.
    """
    from photobox.people.cluster import recluster

    stats = {"faces": 0, "changed": 0, "new_people": 0, "queried": 0}
    started = box.clock()
    params = DEFAULTS
    use_graph = params.k <= GRAPH_K and params.max_distance <= GRAPH_DISTANCE
    for dim in _dims(box):
        queried: list[tuple[int, np.ndarray, np.ndarray]] = []
        with box.db.transaction() as conn:
            # vec0 rows are not cascaded when a photo is deleted: drop them first, so that no
            # neighbour query (whose lists are stored) answers with a face that is gone.
            conn.execute(f"DELETE FROM {face_table(dim)} WHERE face_id NOT IN (SELECT id FROM faces)")
        with box.db.reader() as conn:
            face_knn.forget(conn, dim)  # after the commit: a deleted id may come back with another vector
        with box.db.reader() as stream, box.db.reader() as knn:
            present = np.fromiter((i for (i,) in knn.execute("SELECT id FROM faces ORDER BY id")), np.int64)

            def faces(dim=dim, present=present):
                # Vectors of faces deleted since (vec0 rows are not cascaded) are left out.
                for fid, blob in stream.execute(f"SELECT face_id, embedding FROM {face_table(dim)}"):
                    pos = np.searchsorted(present, fid)
                    if pos < len(present) and present[pos] == fid:
                        yield fid, np.frombuffer(blob, dtype=np.float32)

            anchors = dict(knn.execute("SELECT id, person_id FROM faces WHERE person_id IS NOT NULL").fetchall())
            constraints = Constraints.from_rows(knn.execute("SELECT face_id, person_id, kind FROM face_constraints"))
            named = {p for (p,) in knn.execute("SELECT id FROM people WHERE name != ''")}
            result = recluster(faces(), neighbours=neighbours_for(knn, dim), anchors=anchors,
                               constraints=constraints, named=named, params=params,
                               known=known_neighbours(knn, present) if use_graph else None,
                               on_neighbours=lambda ids, nb, d, queried=queried: queried.extend(zip(ids, nb, d)))
        stats["faces"] += len(result)
        stats["queried"] += len(queried)
        with box.db.transaction() as conn:
            if use_graph:
                save_lists(conn, ((f, i, d) for f, i, d in queried if f in result))
            created: dict[int, int] = {}
            for face_id, person in result.items():
                if person is not None and person < 0:
                    if person not in created:
                        conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('', ?, ?)",
                                     (started, started))
                        created[person] = conn.last_insert_rowid()
                    person = created[person]
                if anchors.get(face_id) != person:
                    # Faces changed by the user since the run started keep the user's word.
                    conn.execute("UPDATE faces SET person_id = ? WHERE id = ? AND assigned_by = 'auto' "
                                 "AND created_at <= ?", (person, face_id, started))
                    stats["changed"] += conn.changes()
            stats["new_people"] += len(created)
            conn.execute("DELETE FROM people WHERE name = '' AND NOT EXISTS "
                         "(SELECT 1 FROM faces f WHERE f.person_id = people.id)")
            conn.execute("INSERT INTO meta (key, value) VALUES ('faces_reclustered_at', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(started),))
    return stats


def _dims(box: Photobox) -> list[int]:
    with box.db.reader() as conn:
        return _vector_tables(conn)


@feature.job("people.recluster", title="Grouping people", priority=1)
def recluster_job(job: Job) -> None:
    stats = recluster_all(job.context)
    log.info("people: re-clustered %(faces)d faces, %(changed)d moved, %(new_people)d new people", stats)


@feature.every(300, "people-recluster")
async def queue_recluster_when_idle(box: Photobox) -> None:
    """Periodic: after a wave of new faces, once no face scan is pending, re-cluster in full
    (one face at a time is cautious; the full pass recovers the faces it left unassigned)."""
    def due(conn) -> bool:
        pending = conn.execute("SELECT 1 FROM jobs WHERE kind = 'faces' AND state IN ('queued', 'running') "
                               "LIMIT 1").fetchone()
        if pending:
            return False
        last = conn.execute("SELECT value FROM meta WHERE key = 'faces_reclustered_at'").fetchone()
        newest = conn.execute("SELECT max(created_at) FROM faces").fetchone()[0]
        return newest is not None and (last is None or newest > float(last[0]))

    if await box.db.read(due):
        await box.scheduler.enqueue("people.recluster", "", force=True)


@feature.commands
def _commands(commands) -> None:
    from photobox.people.commands import add_commands

    add_commands(commands)


@feature.routes
def _routes():
    from photobox.people import views as people

    return people.ROUTES


@feature.details
def _faces_of(conn, asset_id: int) -> dict:
    from photobox.people.store import person_faces_for_asset

    return {"faces": person_faces_for_asset(conn, asset_id)}
