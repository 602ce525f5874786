"""SQL for people and faces, and the user's corrections (kept as constraints so that no
re-cluster ever undoes them). Writes run inside a write transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import apsw

from photobox.db.sql import MissingRow, id_chunks
from photobox.library.assets import NOT_TRASHED

__all__ = ["Person", "assign_face", "get_person", "list_people", "merge_people", "not_this_person",
           "person_faces_for_asset", "set_cover", "update_person"]


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    name: str
    hidden: int
    birth_date: str | None
    faces: int
    cover_face_id: int | None

    @property
    def label(self) -> str:
        return self.name or "Unnamed person"


_PERSON = ("SELECT p.id, p.name, p.hidden, p.birth_date, "
           "(SELECT count(*) FROM faces f WHERE f.person_id = p.id), "
           "coalesce(p.cover_face_id, (SELECT f.id FROM faces f WHERE f.person_id = p.id ORDER BY f.score DESC LIMIT 1)) "
           "FROM people p")


def list_people(conn: apsw.Connection, *, hidden: bool = False, limit: int = 500) -> list[Person]:
    """People with at least one face: named first (by name), then the largest unnamed clusters."""
    rows = conn.execute(
        _PERSON + " WHERE p.hidden = ? AND EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id) "
        "ORDER BY p.name = '', p.name COLLATE NOCASE, 5 DESC, p.id LIMIT ?", (1 if hidden else 0, limit)).fetchall()
    return [Person(*r) for r in rows]


def get_person(conn: apsw.Connection, person_id: int) -> Person | None:
    row = conn.execute(_PERSON + " WHERE p.id = ?", (person_id,)).fetchone()
    return Person(*row) if row else None


def update_person(conn: apsw.Connection, person_id: int, *, name: str | None = None, hidden: bool | None = None,
                  birth_date: str | None = None) -> None:
    """Rename, hide/show, or set the birth date (``""`` clears it)."""
    now = time.time()
    if name is not None:
        conn.execute("UPDATE people SET name = ?, updated_at = ? WHERE id = ?", (name.strip()[:200], now, person_id))
    if hidden is not None:
        conn.execute("UPDATE people SET hidden = ?, updated_at = ? WHERE id = ?", (1 if hidden else 0, now, person_id))
    if birth_date is not None:
        conn.execute("UPDATE people SET birth_date = ?, updated_at = ? WHERE id = ?",
                     (birth_date or None, now, person_id))


def set_cover(conn: apsw.Connection, person_id: int, face_id: int) -> None:
    conn.execute("UPDATE people SET cover_face_id = ?, updated_at = ? WHERE id = ? AND EXISTS "
                 "(SELECT 1 FROM faces WHERE id = ? AND person_id = ?)",
                 (face_id, time.time(), person_id, face_id, person_id))


def _constrain(conn: apsw.Connection, face_id: int, person_id: int, kind: str) -> None:
    conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (face_id, person_id) DO UPDATE SET kind = excluded.kind, created_at = excluded.created_at",
                 (face_id, person_id, kind, time.time()))


def not_this_person(conn: apsw.Connection, face_id: int, person_id: int) -> None:
    """"Not this person": the face leaves them and may never join them again.

    Raises:
        MissingRow: the face or the person does not exist.
    """
    _require(conn, face_id, person_id)
    conn.execute("UPDATE faces SET person_id = NULL, assigned_by = 'user' WHERE id = ? AND person_id = ?",
                 (face_id, person_id))
    _constrain(conn, face_id, person_id, "cannot")


def _require(conn: apsw.Connection, face_id: int, person_id: int | None) -> None:
    """Raise :class:`MissingRow` unless the face (and the person, when given) exist."""
    if conn.execute("SELECT 1 FROM faces WHERE id = ?", (face_id,)).fetchone() is None:
        raise MissingRow(f"no face {face_id}")
    if person_id is not None and conn.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone() is None:
        raise MissingRow(f"no person {person_id}")


def assign_face(conn: apsw.Connection, face_id: int, person_id: int | None = None, *, new_name: str = "") -> int:
    """Move a face to a person (or a new one named ``new_name``); remembered as a must-link.

    Raises:
        MissingRow: the face or the person does not exist.
    """
    _require(conn, face_id, person_id)
    if person_id is None:
        now = time.time()
        conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES (?, ?, ?)", (new_name.strip()[:200], now, now))
        person_id = conn.last_insert_rowid()
    conn.execute("UPDATE faces SET person_id = ?, assigned_by = 'user' WHERE id = ?", (person_id, face_id))
    conn.execute("DELETE FROM face_constraints WHERE face_id = ? AND kind = 'must' AND person_id != ?",
                 (face_id, person_id))
    _constrain(conn, face_id, person_id, "must")
    return person_id


def merge_people(conn: apsw.Connection, keep: int, other: int) -> int:
    """Merge ``other`` into ``keep``: its faces (and what the user said about them) move over.

    Each moved face gets a must-link to ``keep`` so a later re-cluster cannot split the
    merge apart again. Returns how many faces moved.
    """
    if keep == other:
        return 0
    moved = [f for (f,) in conn.execute("SELECT id FROM faces WHERE person_id = ?", (other,))]
    conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (keep, other))
    # Constraints about `other` now speak about `keep`; a face the user said is NOT `keep`
    # loses its must-link to `other` (the newer statement, the merge, wins for that pair).
    conn.execute("DELETE FROM face_constraints WHERE person_id = ? AND face_id IN "
                 "(SELECT face_id FROM face_constraints WHERE person_id = ?)", (other, keep))
    conn.execute("UPDATE face_constraints SET person_id = ? WHERE person_id = ?", (keep, other))
    for face_id in moved:
        _constrain(conn, face_id, keep, "must")
    row = conn.execute("SELECT name, birth_date FROM people WHERE id = ?", (other,)).fetchone()
    if row:
        conn.execute("UPDATE people SET name = CASE WHEN name = '' THEN ? ELSE name END, "
                     "birth_date = coalesce(birth_date, ?), updated_at = ? WHERE id = ?", (row[0], row[1], time.time(), keep))
    conn.execute("DELETE FROM people WHERE id = ?", (other,))
    return len(moved)


def age_on(birth_date: str | None, taken_at: str | None) -> int | None:
    """Whole years between a birth date and when a photo was taken (None if either is unknown)."""
    if not birth_date or not taken_at or len(taken_at) < 10:
        return None
    try:
        by, bm, bd = (int(x) for x in birth_date[:10].split("-"))
        ty, tm, td = (int(x) for x in taken_at[:10].split("-"))
    except ValueError:
        return None
    age = ty - by - ((tm, td) < (bm, bd))
    return age if age >= 0 else None


def person_faces_for_asset(conn: apsw.Connection, asset_id: int) -> list[tuple]:
    """(face id, person id, person name, x1, y1, x2, y2, age) of the faces in one photo; the age
    (in whole years, when the person's birthday is known) is at the time the photo was taken."""
    rows = conn.execute(
        "SELECT f.id, f.person_id, coalesce(p.name, ''), f.x1, f.y1, f.x2, f.y2, p.birth_date, a.taken_at "
        "FROM faces f JOIN assets a ON a.id = f.asset_id LEFT JOIN people p ON p.id = f.person_id "
        "WHERE f.asset_id = ? ORDER BY f.x1", (asset_id,)).fetchall()
    return [(*r[:7], age_on(r[7], r[8])) for r in rows]


def unassigned_faces(conn: apsw.Connection, *, after_id: int = 0, limit: int = 60) -> list[tuple[int, int]]:
    """(face id, asset id) of faces nobody is assigned to, oldest first, keyset by id."""
    return conn.execute(f"SELECT f.id, f.asset_id FROM faces f JOIN assets a ON a.id = f.asset_id "
                        f"WHERE f.person_id IS NULL AND f.id > ? AND {NOT_TRASHED} ORDER BY f.id LIMIT ?",
                        (after_id, limit)).fetchall()


def merge_suggestions(conn: apsw.Connection, person_id: int, *, sample: int = 20, limit: int = 3) -> list[Person]:
    """Other people whose faces are among the nearest neighbours of this person's faces."""
    import re

    import numpy as np

    from photobox.people.faces_job import face_table, neighbours_for

    # vec0 adds shadow tables (face_vectors_512_chunks …): keep the vector tables themselves.
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE name GLOB 'face_vectors_[0-9]*'") if re.fullmatch(r"face_vectors_\d+", name)]
    votes: dict[int, int] = {}
    for table in tables:
        dim = int(table.rsplit("_", 1)[1])
        faces = conn.execute(f"SELECT v.embedding FROM {face_table(dim)} v JOIN faces f ON f.id = v.face_id "
                             "WHERE f.person_id = ? LIMIT ?", (person_id, sample)).fetchall()
        if not faces:
            continue
        queries = np.stack([np.frombuffer(blob, dtype=np.float32) for (blob,) in faces])
        ids, _ = neighbours_for(conn, dim)(queries, 8, 0.6)
        found = [int(i) for i in ids.ravel() if i >= 0]
        for chunk, marks in id_chunks(found):
            for (other,) in conn.execute(f"SELECT person_id FROM faces WHERE person_id IS NOT NULL AND "
                                         f"person_id != ? AND id IN ({marks})", (person_id, *chunk)):
                votes[other] = votes.get(other, 0) + 1
    best = sorted(votes, key=lambda p: -votes[p])[:limit]
    return [p for p in (get_person(conn, i) for i in best) if p is not None and not p.hidden]
