"""A human-readable JSON export of what cannot be re-derived from the files, and re-applying it.

Thumbnails, metadata, embeddings and face boxes come back by rescanning the originals; what
the user *did* does not: albums, favourites, archive and trash, descriptions, people's
names, birth dates and hidden state, and which face is whom (with the corrections the user
made). This file records exactly that, with assets identified by their SHA-1 checksum (the
same bytes give the same checksum on any machine) plus their path for humans, and faces by
(asset checksum, box). :func:`apply` matches it against a database rebuilt by rescanning.

Format (``"format": "photobox-sidecar"``, ``"version": 1``)::

    libraries  [{name, root, exclusions, scan_minutes}]           external folders
    assets     {checksum: {library, path, name, favorite, archived, trashed_at, description}}
    albums     [{name, description, created_at, cover, assets: [checksum…]}]
    people     [{key, name, birth_date, hidden, cover, faces: [{asset, box: [x1,y1,x2,y2], by}]}]
    constraints [{asset, box, person: key, kind: must|cannot}]

Times are UTC ISO 8601 strings. Only assets with some user state or referenced by an album
or an exported face are listed (the rest is re-derived), and only people the user touched
(named, hidden, a birth date, or a corrected face): unnamed automatic clusters are rebuilt
by clustering.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from photobox.db.connection import connect
from photobox.library import albums as album_store
from photobox.library import assets as asset_store

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["FORMAT", "VERSION", "SidecarError", "apply", "apply_file", "export", "export_file"]

FORMAT = "photobox-sidecar"
VERSION = 1
#: Faces match when their boxes overlap at least this much (intersection over union):
#: a re-run detector finds the same face with a slightly different box.
MIN_IOU = 0.5


class SidecarError(ValueError):
    """The file is not a sidecar export this photobox can read."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _box(row: tuple) -> list[float]:
    return [round(float(v), 5) for v in row]


def export(conn: apsw.Connection) -> dict[str, Any]:
    """Build the export from a (read) connection; see the module docstring for the shape."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key != 'secret_key'").fetchall())
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "about": "What you did in photobox that the photo files do not record. Re-apply it to a database "
                 "rebuilt from the files with `photobox sidecar apply FILE`.",
        "exported_at": _iso(datetime.now(UTC).timestamp()),
        "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
        "instance_id": meta.get("instance_id"),
    }
    libs = {lib_id: (name, kind, root) for lib_id, name, kind, root in
            conn.execute("SELECT id, name, kind, root FROM libraries")}
    out["libraries"] = [
        {"name": name, "root": root, "exclusions": json.loads(excl), "scan_minutes": minutes}
        for name, root, excl, minutes in conn.execute(
            "SELECT name, root, exclusions, scan_minutes FROM libraries WHERE kind = 'external' ORDER BY id")]
    checksum_of: dict[int, str] = {}
    wanted: set[int] = set()

    def cs(asset_id: int) -> str:
        wanted.add(asset_id)
        return checksum_of[asset_id]

    for asset_id, checksum in conn.execute("SELECT id, checksum FROM assets"):
        checksum_of[asset_id] = checksum.hex()
    # Albums.
    albums = []
    for album_id, name, description, created_at, cover in conn.execute(
            "SELECT id, name, description, created_at, cover_asset_id FROM albums ORDER BY id").fetchall():
        members = [cs(a) for (a,) in conn.execute(
            "SELECT asset_id FROM album_assets WHERE album_id = ? ORDER BY sort_ts, asset_id", (album_id,))]
        albums.append({"name": name, "description": description, "created_at": _iso(created_at),
                       "cover": cs(cover) if cover in checksum_of else None, "assets": members})
    out["albums"] = albums
    # People the user touched, with all their faces.
    people = []
    face_key: dict[int, dict] = {}
    for person_id, name, hidden, birth, cover in conn.execute(
            "SELECT p.id, p.name, p.hidden, p.birth_date, p.cover_face_id FROM people p WHERE p.name != '' "
            "OR p.hidden = 1 OR p.birth_date IS NOT NULL OR EXISTS (SELECT 1 FROM face_constraints c "
            "WHERE c.person_id = p.id) OR EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id "
            "AND f.assigned_by = 'user') ORDER BY p.id").fetchall():
        faces = []
        cover_ref = None
        for face_id, asset_id, x1, y1, x2, y2, by in conn.execute(
                "SELECT id, asset_id, x1, y1, x2, y2, assigned_by FROM faces WHERE person_id = ? ORDER BY id",
                (person_id,)):
            ref = {"asset": cs(asset_id), "box": _box((x1, y1, x2, y2))}
            face_key[face_id] = ref
            faces.append({**ref, "by": by})
            if face_id == cover:
                cover_ref = ref
        people.append({"key": person_id, "name": name, "birth_date": birth, "hidden": bool(hidden),
                       "cover": cover_ref, "faces": faces})
    out["people"] = people
    constraints = []
    exported_people = {p["key"] for p in people}
    for _face_id, person_id, kind, asset_id, x1, y1, x2, y2 in conn.execute(
            "SELECT c.face_id, c.person_id, c.kind, f.asset_id, f.x1, f.y1, f.x2, f.y2 FROM face_constraints c "
            "JOIN faces f ON f.id = c.face_id ORDER BY c.person_id, c.face_id"):
        if person_id in exported_people:
            constraints.append({"asset": cs(asset_id), "box": _box((x1, y1, x2, y2)), "person": person_id,
                                "kind": kind})
    out["constraints"] = constraints
    # Assets: every one with user state, plus those referenced above.
    assets = {}
    for (asset_id, library_id, rel_path, name, favorite, archived, trashed_at, description) in conn.execute(
            "SELECT id, library_id, rel_path, original_name, favorite, archived, trashed_at, description FROM assets "
            "ORDER BY id"):
        if not (favorite or archived or trashed_at is not None or description or asset_id in wanted):
            continue
        lib = libs.get(library_id, ("", "upload", ""))
        assets[checksum_of[asset_id]] = {
            "library": lib[0] if lib[1] == "upload" else lib[2], "path": rel_path, "name": name,
            "favorite": bool(favorite), "archived": bool(archived), "trashed_at": _iso(trashed_at),
            "description": description or None,
        }
    out["assets"] = assets
    return out


def export_file(source_db: Path, dest: Path) -> Path:
    """Export from the database file ``source_db`` to ``dest`` (temp name, fsync, rename)."""
    conn = connect(source_db, readonly=True)
    try:
        data = export(conn)
    finally:
        conn.close()
    tmp = dest.with_name(dest.name + ".partial")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if tmp.is_file():
            tmp.unlink()
        raise
    return dest


def load_file(path: Path) -> dict[str, Any]:
    """Read and check a sidecar export.

    Raises:
        SidecarError: not JSON, not a sidecar, or a newer format version.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"{path} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SidecarError(f"{path} is not a photobox sidecar export")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise SidecarError(f"{path} has sidecar version {data.get('version')}; this photobox reads up to {VERSION}")
    return data


def _iou(a: list[float], b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def apply(conn: apsw.Connection, data: dict[str, Any], *, now: float) -> dict[str, int]:
    """Re-apply an export to the database behind ``conn`` (inside a write transaction).

    Assets are matched by checksum; albums by name (created when missing); people by name,
    or else by whoever holds most of their matched faces; faces by the best-overlapping box
    on the same asset. Idempotent: applying the same file twice changes nothing more. What
    cannot be matched yet (e.g. faces before face detection has run) is counted in
    ``*_missing`` so the caller can say "apply again later".
    """
    stats = {"assets": 0, "assets_missing": 0, "albums": 0, "album_members": 0, "people": 0, "faces": 0,
             "faces_missing": 0, "constraints": 0, "libraries": 0}
    ids: dict[str, int | None] = {}

    def asset_id(checksum: str) -> int | None:
        if checksum not in ids:
            try:
                raw = bytes.fromhex(checksum)
            except ValueError:
                raw = b""
            row = conn.execute("SELECT id FROM assets WHERE checksum = ? ORDER BY motion_of IS NOT NULL, id LIMIT 1",
                               (raw,)).fetchone()
            ids[checksum] = row[0] if row else None
        return ids[checksum]

    for lib in data.get("libraries", []):
        root = str(lib.get("root", ""))
        if root and conn.execute("SELECT 1 FROM libraries WHERE root = ?", (root,)).fetchone() is None:
            conn.execute("INSERT INTO libraries (name, kind, root, exclusions, scan_minutes, created_at) "
                         "VALUES (?, 'external', ?, ?, ?, ?)",
                         (str(lib.get("name") or Path(root).name), root, json.dumps(lib.get("exclusions", [])),
                          int(lib.get("scan_minutes", 360)), now))
            stats["libraries"] += 1
    # Live Photo videos, looked up once (motion_of has no index of its own).
    motion: dict[int, list[int]] = {}
    for video, still in conn.execute("SELECT id, motion_of FROM assets WHERE motion_of IS NOT NULL"):
        motion.setdefault(still, []).append(video)
    for checksum, state in data.get("assets", {}).items():
        aid = asset_id(checksum)
        if aid is None:
            stats["assets_missing"] += 1
            continue
        # A Live Photo's video follows its still, as a user's marks do.
        asset_store.set_marks(conn, aid, favorite=1 if state.get("favorite") else 0,
                              archived=1 if state.get("archived") else 0, trashed_at=_epoch(state.get("trashed_at")),
                              description=state.get("description"), videos=motion.get(aid, ()), now=now)
        stats["assets"] += 1
    for album in data.get("albums", []):
        name = str(album.get("name", ""))[:200] or album_store.UNTITLED
        members = [aid for checksum in album.get("assets", []) if (aid := asset_id(checksum)) is not None]
        cover = asset_id(album["cover"]) if album.get("cover") else None
        made, added = album_store.restore_album(conn, name, str(album.get("description") or ""),
                                                _epoch(album.get("created_at")) or now, members, cover, now=now)
        stats["albums"] += made
        stats["album_members"] += added
    _apply_people(conn, data, asset_id, stats, now)
    return stats


def _face_id(conn: apsw.Connection, aid: int | None, box: list[float]) -> int | None:
    if aid is None or len(box) != 4:
        return None
    best, best_iou = None, MIN_IOU
    for face_id, *coords in conn.execute("SELECT id, x1, y1, x2, y2 FROM faces WHERE asset_id = ?", (aid,)):
        iou = _iou(box, tuple(coords))
        if iou >= best_iou:
            best, best_iou = face_id, iou
    return best


def _apply_people(conn: apsw.Connection, data: dict, asset_id, stats: dict, now: float) -> None:
    person_of_key: dict[Any, int] = {}
    for person in data.get("people", []):
        matched = []
        for face in person.get("faces", []):
            fid = _face_id(conn, asset_id(face.get("asset", "")), face.get("box", []))
            if fid is None:
                stats["faces_missing"] += 1
            else:
                matched.append((fid, face.get("by") == "user"))
        name = str(person.get("name") or "")[:200]
        row = None
        if name:
            row = conn.execute("SELECT id FROM people WHERE name = ? ORDER BY id LIMIT 1", (name,)).fetchone()
        if row is None and matched:
            marks = ",".join("?" * len(matched))
            row = conn.execute(f"SELECT person_id FROM faces WHERE id IN ({marks}) AND person_id IS NOT NULL "
                               "GROUP BY person_id ORDER BY count(*) DESC LIMIT 1",
                               [f for f, _ in matched]).fetchone()
        if row is None:
            if not matched and not name:
                continue  # nothing to attach them to yet
            conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES (?, ?, ?)", (name, now, now))
            person_id = conn.last_insert_rowid()
        else:
            person_id = row[0]
        person_of_key[person.get("key")] = person_id
        conn.execute("UPDATE people SET name = ?, hidden = ?, birth_date = ?, updated_at = ? WHERE id = ?",
                     (name, 1 if person.get("hidden") else 0, person.get("birth_date"), now, person_id))
        stats["people"] += 1
        for fid, by_user in matched:
            conn.execute("UPDATE faces SET person_id = ?, assigned_by = CASE WHEN ? THEN 'user' ELSE assigned_by END "
                         "WHERE id = ?", (person_id, 1 if by_user else 0, fid))
            stats["faces"] += 1
        cover = person.get("cover")
        if cover:
            fid = _face_id(conn, asset_id(cover.get("asset", "")), cover.get("box", []))
            if fid is not None:
                conn.execute("UPDATE people SET cover_face_id = ? WHERE id = ?", (fid, person_id))
    for c in data.get("constraints", []):
        person_id = person_of_key.get(c.get("person"))
        fid = _face_id(conn, asset_id(c.get("asset", "")), c.get("box", []))
        if person_id is None or fid is None or c.get("kind") not in ("must", "cannot"):
            continue
        conn.execute("INSERT INTO face_constraints (face_id, person_id, kind, created_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (face_id, person_id) DO UPDATE SET kind = excluded.kind",
                     (fid, person_id, c["kind"], now))
        if c["kind"] == "cannot":
            conn.execute("UPDATE faces SET person_id = NULL WHERE id = ? AND person_id = ?", (fid, person_id))
        stats["constraints"] += 1


def apply_file(box: Photobox, path: Path) -> dict[str, int]:
    """Load ``path`` and apply it to ``box``'s database in one transaction."""
    data = load_file(path)
    with box.db.transaction() as conn:
        return apply(conn, data, now=box.clock())
