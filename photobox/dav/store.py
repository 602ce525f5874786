"""The WebDAV folder tree in ``dav_entries``: plain SQL, one function per operation.

Paths here are tuples of NFC segments below ``/dav/`` (``("upload", "Camera", "a.jpg")``).
The root ``()`` and the upload area ``("upload",)`` always exist and are not stored; every
other collection and file is one row keyed by (parent, name). A subtree is found by a range
on ``parent`` (``'a/b' <= parent < 'a/b0'``, ``'0'`` being the character after ``'/'``),
which the UNIQUE (parent, name) index serves without LIKE and its wildcards.

Entries only describe what a client uploaded; assets are never deleted or changed here,
except that a MOVE of a file whose PUT created the asset renames it
(:func:`photobox.library.assets.set_original_name`: apps upload to ``IMG_1.jpg.tmp`` and
rename it when done).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import apsw

from photobox.library import assets

__all__ = ["Entry", "ROOT", "UPLOAD", "children", "copy_tree", "delete_tree", "exists_dir", "get",
           "make_collection", "move_tree", "parent_key", "put_file", "set_mtime", "used_bytes"]

ROOT: tuple[str, ...] = ()
UPLOAD: tuple[str, ...] = ("upload",)
_COLUMNS = "parent, name, is_dir, asset_id, made_asset, size, checksum, mtime, created_at"


@dataclass(frozen=True, slots=True)
class Entry:
    parent: str
    name: str
    is_dir: bool
    asset_id: int | None
    made_asset: bool
    size: int
    checksum: bytes | None
    mtime: float
    created_at: float

    @property
    def path(self) -> tuple[str, ...]:
        return (*self.parent.split("/"), self.name)

    @property
    def etag(self) -> str | None:
        return f'"{self.checksum.hex()}"' if self.checksum else None


def _entry(row: tuple) -> Entry:
    p, n, d, a, m, s, c, mt, ct = row
    return Entry(p, n, bool(d), a, bool(m), s, c, mt, ct)


def parent_key(path: tuple[str, ...]) -> str:
    """The ``parent`` column value of the children of ``path``."""
    return "/".join(path)


def _split(path: tuple[str, ...]) -> tuple[str, str]:
    return parent_key(path[:-1]), path[-1]


def get(conn: apsw.Connection, path: tuple[str, ...]) -> Entry | None:
    """The stored entry at ``path`` (None for the root, the upload area and missing paths)."""
    if len(path) < 2:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM dav_entries WHERE parent = ? AND name = ?", _split(path)).fetchone()
    return _entry(row) if row else None


def exists_dir(conn: apsw.Connection, path: tuple[str, ...]) -> bool:
    """Whether ``path`` is a collection (the root and the upload area always are)."""
    if path in (ROOT, UPLOAD):
        return True
    entry = get(conn, path)
    return entry is not None and entry.is_dir


def children(conn: apsw.Connection, path: tuple[str, ...], *, after: str = "", limit: int = 500) -> list[Entry]:
    """One keyset page of the entries directly inside ``path``, by name."""
    return [_entry(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM dav_entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?",
        (parent_key(path), after, limit))]


def _subtree_where(prefix: str) -> tuple[str, tuple]:
    # Rows strictly below ``prefix``: parent == prefix, or parent starts with prefix + '/'.
    return "(parent = ? OR (parent >= ? AND parent < ?))", (prefix, prefix + "/", prefix + "0")


def make_collection(conn: apsw.Connection, path: tuple[str, ...], *, now: float | None = None) -> None:
    """Create a collection (the caller checked that the parent exists and the name is free)."""
    now = time.time() if now is None else now
    parent, name = _split(path)
    conn.execute("INSERT INTO dav_entries (parent, name, is_dir, mtime, created_at) VALUES (?, ?, 1, ?, ?)",
                 (parent, name, now, now))


def put_file(conn: apsw.Connection, path: tuple[str, ...], *, asset_id: int | None, made_asset: bool, size: int,
             checksum: bytes, mtime: float, now: float | None = None) -> bool:
    """Record an uploaded file at ``path``, replacing a file entry there; True if it is new.

    ``asset_id`` is None for an empty placeholder (clients that create, then write).
    """
    now = time.time() if now is None else now
    parent, name = _split(path)
    existed = conn.execute("SELECT 1 FROM dav_entries WHERE parent = ? AND name = ?", (parent, name)).fetchone()
    conn.execute(
        "INSERT INTO dav_entries (parent, name, is_dir, asset_id, made_asset, size, checksum, mtime, created_at) "
        "VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?) ON CONFLICT (parent, name) DO UPDATE SET is_dir = 0, "
        "made_asset = CASE WHEN asset_id IS excluded.asset_id THEN max(made_asset, excluded.made_asset) "
        "ELSE excluded.made_asset END, asset_id = excluded.asset_id, size = excluded.size, "
        "checksum = excluded.checksum, mtime = excluded.mtime",
        (parent, name, asset_id, int(made_asset), size, checksum, mtime, now))
    return existed is None


def set_mtime(conn: apsw.Connection, path: tuple[str, ...], mtime: float) -> None:
    """Record the client's file time (PROPPATCH of getlastmodified and friends)."""
    conn.execute("UPDATE dav_entries SET mtime = ? WHERE parent = ? AND name = ?", (mtime, *_split(path)))


def delete_tree(conn: apsw.Connection, path: tuple[str, ...]) -> int:
    """Forget the entry at ``path`` and, for a collection, everything below it; return how many.

    Only listing entries go: the assets they point to stay in the library.
    """
    where, args = _subtree_where(parent_key(path))
    conn.execute(f"DELETE FROM dav_entries WHERE {where}", args)
    below = conn.changes()
    conn.execute("DELETE FROM dav_entries WHERE parent = ? AND name = ?", _split(path))
    return below + conn.changes()


def move_tree(conn: apsw.Connection, src: tuple[str, ...], dst: tuple[str, ...], *, now: float | None = None) -> None:
    """Rename ``src`` (and its subtree) to ``dst``; the caller cleared ``dst`` first.

    A file whose upload created its asset gives the asset the new name, so an app that
    uploads to a temporary name and renames it leaves the real name in photobox.
    """
    now = time.time() if now is None else now
    old, new = parent_key(src), parent_key(dst)
    entry = get(conn, src)
    where, args = _subtree_where(old)
    conn.execute(f"UPDATE dav_entries SET parent = ? || substr(parent, ?) WHERE {where}",
                 (new, len(old) + 1, *args))
    conn.execute("UPDATE dav_entries SET parent = ?, name = ? WHERE parent = ? AND name = ?",
                 (*_split(dst), *_split(src)))
    if entry is not None and not entry.is_dir and entry.made_asset and entry.asset_id and src[-1] != dst[-1]:
        assets.set_original_name(conn, entry.asset_id, dst[-1], now=now)


def copy_tree(conn: apsw.Connection, src: tuple[str, ...], dst: tuple[str, ...], *, deep: bool,
              now: float | None = None) -> None:
    """Copy the entry ``src`` to ``dst`` (with its subtree when ``deep``); assets are shared, not copied."""
    now = time.time() if now is None else now
    old, new = parent_key(src), parent_key(dst)
    conn.execute(
        "INSERT INTO dav_entries (parent, name, is_dir, asset_id, made_asset, size, checksum, mtime, created_at) "
        "SELECT ?, ?, is_dir, asset_id, 0, size, checksum, mtime, ? FROM dav_entries WHERE parent = ? AND name = ?",
        (*_split(dst), now, *_split(src)))
    if deep:
        where, args = _subtree_where(old)
        conn.execute(
            "INSERT INTO dav_entries (parent, name, is_dir, asset_id, made_asset, size, checksum, mtime, created_at) "
            f"SELECT ? || substr(parent, ?), name, is_dir, asset_id, 0, size, checksum, mtime, ? FROM dav_entries "
            f"WHERE {where}", (new, len(old) + 1, now, *args))


def used_bytes(conn: apsw.Connection) -> int:
    """Total size of the files listed (the quota-used-bytes of the upload area)."""
    return conn.execute("SELECT coalesce(sum(size), 0) FROM dav_entries WHERE is_dir = 0").fetchone()[0]
