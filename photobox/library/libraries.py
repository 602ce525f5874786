"""External libraries: folders (a NAS share, an old photo drive) indexed in place, read-only.

A scan walks the folder (polling, so it works on network mounts where inotify does not),
skips files whose size and mtime are unchanged, queues the new and changed ones for
``ingest.file``, and sweeps files it did not see this time (mark and sweep, by generation):
their assets are marked offline, never deleted, so albums and faces survive a share that
was briefly unmounted or a file that moved (a moved file is recognised by its checksum).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from photobox.jobs import Job, PermanentError
from photobox.jobs import store as job_store
from photobox.library import assets
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox
    from photobox.settings import Settings

__all__ = ["DEFAULT_EXCLUSIONS", "MEDIA_EXTENSIONS", "Library", "add_library", "list_libraries", "scan_library",
           "queue_due_scans", "remove_library", "skip_reason", "skipped_files"]

#: Extensions taken on their name (the content is checked at ingest). A file with any other
#: name, or none (``IMG_1``, ``.iiq``), is judged by its first bytes (:func:`skip_reason`).
MEDIA_EXTENSIONS = frozenset(
    "jpg jpeg jpe jfif png gif webp avif heic heif hif tif tiff bmp dng cr2 cr3 crw nef nrw arw srf sr2 raf "
    "rw2 rwl orf ori pef srw x3f 3fr fff erf kdc dcr mef mos iiq mrw "
    "mp4 m4v mov qt 3gp 3g2 mts m2ts ts mkv webm avi wmv mpg mpeg insv".split())
#: Thumbnail folders of NAS vendors, recycle bins and hidden files.
DEFAULT_EXCLUSIONS = ("@eaDir", "#recycle", "#snapshot", ".*", "*.tmp", "Thumbs.db", "$RECYCLE.BIN",
                      "lost+found")
_BATCH = 500

feature = Feature("external libraries")


@dataclass(frozen=True, slots=True)
class Library:
    id: int
    name: str
    kind: str
    root: str
    exclusions: list[str]
    scan_minutes: int
    last_scan_at: float | None
    last_scan_stats: dict | None


def _library(row: tuple) -> Library:
    lib_id, name, kind, root, excl, minutes, last, stats = row
    return Library(lib_id, name, kind, root, json.loads(excl), minutes, last, json.loads(stats) if stats else None)


_COLUMNS = "id, name, kind, root, exclusions, scan_minutes, last_scan_at, last_scan_stats"


def list_libraries(conn: apsw.Connection, *, external_only: bool = True) -> list[Library]:
    """Libraries, external ones only by default."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM libraries WHERE (? = 0 OR kind = 'external') ORDER BY id",
                        (1 if external_only else 0,)).fetchall()
    return [_library(r) for r in rows]


def get_library(conn: apsw.Connection, library_id: int) -> Library | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM libraries WHERE id = ?", (library_id,)).fetchone()
    return _library(row) if row else None


def add_library(conn: apsw.Connection, root: Path, *, name: str = "", exclusions: list[str] | None = None,
                scan_minutes: int = 360, now: float, data_dir: Path | None = None) -> int:
    """Register a folder as an external library; returns its id.

    Raises:
        ValueError: the folder does not exist, or overlaps photobox's own data folder.
    """
    try:
        root = Path(root).expanduser().resolve()
        is_dir = root.is_dir()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop…
        raise ValueError(f"{str(root)[:200]!r} is not a folder photobox can read ({type(exc).__name__})") from None
    if not is_dir:
        raise ValueError(f"{root} is not a folder photobox can read")
    if data_dir is not None:
        data = data_dir.resolve()
        if root.is_relative_to(data) or data.is_relative_to(root):
            raise ValueError("an external library cannot contain, or be inside, photobox's data folder")
    for existing in list_libraries(conn):
        other = Path(existing.root)
        if root == other or root.is_relative_to(other) or other.is_relative_to(root):
            raise ValueError(f"{root} overlaps the library {existing.name!r} ({other})")
    conn.execute(
        "INSERT INTO libraries (name, kind, root, exclusions, scan_minutes, created_at) VALUES (?, 'external', ?, ?, ?, ?)",
        (name.strip() or root.name, str(root), json.dumps(list(exclusions if exclusions is not None else DEFAULT_EXCLUSIONS)),
         scan_minutes, now),
    )
    return conn.last_insert_rowid()


def remove_library(conn: apsw.Connection, library_id: int) -> None:
    """Forget an external library (its row and its list of files): its assets go to the
    trash; its files are untouched."""
    if library_id == 1:
        raise ValueError("the upload library cannot be removed")
    assets.trash_library(conn, library_id)
    conn.execute("DELETE FROM library_files WHERE library_id = ?", (library_id,))
    conn.execute("DELETE FROM libraries WHERE id = ? AND kind = 'external'", (library_id,))


def _excluded(name: str, rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def skip_reason(path: Path) -> str | None:
    """Why a file found in a folder is not taken in, or None when it is a candidate.

    A known media extension is enough here (ingest reads the content and says if it lies).
    Any other name is decided by the content, through the same sniffing ingest uses, so a
    JPEG without an extension or a RAW format photobox has no extension for is not lost.
    """
    ext = path.suffix[1:].lower()
    if ext in MEDIA_EXTENSIONS:
        return None
    from photobox.media import SNIFF_BYTES, sniff

    named = f"its extension .{path.suffix[1:]} is not a photo or video one" if ext else "it has no extension"
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__}), and {named}"
    if not head:
        return f"empty file (0 bytes), and {named}"
    mime, kind, label = sniff(head)
    if kind is not None:
        return None
    found = label or (mime and f"{mime} content") or "content photobox does not recognise"
    return f"not a photo or video: {named}, and it holds {found}"


def _walk(root: Path, patterns: list[str]):
    """Yield (rel_path, size, mtime) of the files under ``root``, depth first, without
    following symlinked folders (loops on NAS shares) and skipping excluded names. Every
    file is yielded: which ones are photos is decided by :func:`skip_reason`."""
    stack = [("", root)]
    while stack:
        rel_dir, folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if _excluded(entry.name, rel, patterns):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel, Path(entry.path)))
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat(follow_symlinks=True)
                    yield rel, st.st_size, st.st_mtime
            except OSError:
                continue


def scan_library(box: Photobox, library_id: int, should_stop=lambda: False) -> dict:
    """Scan one external library; return counts (seen, new, changed, unchanged, skipped, vanished).

    ``skipped``: files seen that photobox does not show, each kept in ``library_files`` with
    state ``error`` and the reason (:func:`skipped_files` lists them), so a rescan does not
    read them again while their size and mtime stay the same.
    """
    with box.db.reader() as conn:
        lib = get_library(conn, library_id)
    if lib is None or lib.kind != "external":
        raise PermanentError(f"no external library {library_id}")
    root = Path(lib.root)
    if not root.is_dir():
        # A missing USB disk or unmounted share must not look like an empty library.
        raise RuntimeError(f"the library folder {root} is missing (is the disk or share mounted?)")
    with box.db.transaction() as conn:
        # last_scan_at is set at the start, so a failing scan (missing disk) waits for its
        # next interval instead of being queued again every minute.
        conn.execute("UPDATE libraries SET scan_generation = scan_generation + 1, last_scan_at = ? WHERE id = ?",
                     (box.clock(), library_id))
        (generation,) = conn.execute("SELECT scan_generation FROM libraries WHERE id = ?", (library_id,)).fetchone()
    stats = {"seen": 0, "new": 0, "changed": 0, "unchanged": 0, "skipped": 0, "vanished": 0}
    spec = box.scheduler.registry.get("ingest.file")
    batch: list[tuple[str, int, float]] = []
    select = "SELECT id, size, mtime, state FROM library_files WHERE library_id = ? AND rel_path = ?"

    def unchanged(row: tuple | None, size: int, mtime: float) -> bool:
        return row is not None and row[1] == size and row[2] == mtime and row[3] in ("ok", "duplicate", "error")

    def flush() -> None:
        # Read the heads of new and changed files before the write transaction, so a slow
        # share never holds the database's write lock.
        with box.db.reader() as conn:
            rows = {rel: conn.execute(select, (library_id, rel)).fetchone() for rel, _, _ in batch}
        reasons = {rel: skip_reason(root / rel) for rel, size, mtime in batch if not unchanged(rows[rel], size, mtime)}
        now = box.clock()
        with box.db.transaction() as conn:
            for rel, size, mtime in batch:
                row = conn.execute(select, (library_id, rel)).fetchone()
                if unchanged(row, size, mtime):
                    conn.execute("UPDATE library_files SET generation = ? WHERE id = ?", (generation, row[0]))
                    stats["unchanged"] += 1
                    continue
                reason = reasons.get(rel)
                if reason is not None:
                    conn.execute("INSERT INTO library_files (library_id, rel_path, size, mtime, generation, state, error) "
                                 "VALUES (?, ?, ?, ?, ?, 'error', ?) ON CONFLICT (library_id, rel_path) DO UPDATE SET "
                                 "size = excluded.size, mtime = excluded.mtime, generation = excluded.generation, "
                                 "state = 'error', error = excluded.error", (library_id, rel, size, mtime, generation, reason))
                    continue
                if row is None:
                    conn.execute("INSERT INTO library_files (library_id, rel_path, size, mtime, generation, state) "
                                 "VALUES (?, ?, ?, ?, ?, 'new')", (library_id, rel, size, mtime, generation))
                    file_id = conn.last_insert_rowid()
                    stats["new"] += 1
                else:
                    file_id = row[0]
                    conn.execute("UPDATE library_files SET size = ?, mtime = ?, generation = ?, state = 'new' "
                                 "WHERE id = ?", (size, mtime, generation, file_id))
                    stats["changed"] += 1
                if spec is not None:
                    job_store.enqueue(conn, "ingest.file", str(file_id), now=now, priority=spec.priority,
                                      max_attempts=box.settings.job_max_attempts, force=True)
        batch.clear()
        box.scheduler.notify()

    for item in _walk(root, lib.exclusions):
        stats["seen"] += 1
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
            if should_stop():
                raise RuntimeError("scan interrupted by shutdown; it will run again")
    flush()
    with box.db.reader() as conn:
        known = conn.execute("SELECT count(*) FROM library_files WHERE library_id = ? AND state != 'vanished'",
                             (library_id,)).fetchone()[0]
    if stats["seen"] == 0 and known > 0:
        raise RuntimeError(f"{root} looks empty but photobox knows {known} files there; not marking them offline "
                           "(is the share mounted?)")
    stats["vanished"] = _sweep(box, library_id, generation)
    with box.db.reader() as conn:
        # Skipped now or earlier (also files ingest found not to be media): what this folder
        # holds that photobox does not show.
        stats["skipped"] = conn.execute("SELECT count(*) FROM library_files WHERE library_id = ? AND generation = ? "
                                        "AND state = 'error'", (library_id, generation)).fetchone()[0]
    with box.db.transaction() as conn:
        conn.execute("UPDATE libraries SET last_scan_stats = ? WHERE id = ?", (json.dumps(stats), library_id))
    return stats


def skipped_files(conn: apsw.Connection, library_id: int):
    """Yield (rel_path, reason) of the library's files photobox does not show, by path."""
    yield from conn.execute("SELECT rel_path, coalesce(error, 'not a photo or video') FROM library_files "
                            "WHERE library_id = ? AND state = 'error' ORDER BY rel_path", (library_id,))


def _sweep(box: Photobox, library_id: int, generation: int) -> int:
    """Mark files not seen by this scan vanished; their assets go offline unless another
    copy of the same bytes is still present, which then becomes the asset's file."""
    now = box.clock()
    with box.db.transaction() as conn:
        gone = conn.execute("SELECT id, asset_id, rel_path FROM library_files WHERE library_id = ? AND generation < ? "
                            "AND state != 'vanished'", (library_id, generation)).fetchall()
        for file_id, asset_id, rel_path in gone:
            conn.execute("UPDATE library_files SET state = 'vanished' WHERE id = ?", (file_id,))
            if asset_id is None:
                continue
            current = conn.execute("SELECT library_id, rel_path FROM assets WHERE id = ?", (asset_id,)).fetchone()
            if current != (library_id, rel_path):
                continue  # a duplicate copy vanished; the asset's own file is elsewhere
            other = conn.execute("SELECT id, library_id, rel_path FROM library_files WHERE asset_id = ? AND id != ? "
                                 "AND state IN ('ok', 'duplicate') LIMIT 1", (asset_id, file_id)).fetchone()
            if other is not None:
                assets.move_file(conn, asset_id, other[1], other[2], now=now)
                conn.execute("UPDATE library_files SET state = 'ok' WHERE id = ?", (other[0],))
            else:
                assets.mark_offline(conn, asset_id, now=now)
    return len(gone)


@feature.job("scan", title="Library scans", priority=60, max_attempts=3)
def scan_job(job: Job) -> None:
    scan_library(job.context, int(job.target), job.should_stop)


@feature.every(60, "library-scans")
async def queue_due_scans(box: Photobox) -> None:
    """Periodic: queue a scan of every library whose interval has passed."""
    now = box.clock()

    def due(conn: apsw.Connection) -> list[int]:
        return [(lib_id, root) for (lib_id, root) in conn.execute(
            "SELECT id, root FROM libraries WHERE kind = 'external' AND scan_minutes > 0 "
            "AND coalesce(last_scan_at, 0) + scan_minutes * 60 <= ?", (now,))]

    from photobox.datadir import library_folder_present

    for lib_id, root in await box.db.read(due):
        # backup: a missing or empty (unmounted) folder pauses its scans instead of failing them.
        if not await asyncio.to_thread(library_folder_present, Path(root)):
            continue
        await box.scheduler.enqueue("scan", str(lib_id), force=True)


@feature.check("library folders")
def check_library_folders(settings: Settings) -> tuple[str, str]:
    """``photobox doctor``: every external library folder is present."""
    from photobox.db.connection import read_file

    if not settings.db_path.exists():
        return "OK", "no database yet"
    rows = read_file(settings.db_path, "SELECT name, root FROM libraries WHERE kind = 'external' ORDER BY id")
    missing = [f"{name} ({root})" for name, root in rows if not Path(root).is_dir()]
    if missing:
        return "FAIL", "storage missing: " + ", ".join(missing) + " (mount them; their scans wait meanwhile)"
    return "OK", f"{len(rows)} external library folder(s) present"


def library_problems(box: Photobox) -> list[str]:
    """External libraries whose folder is missing, or empty where photobox knows files."""
    problems = []
    with box.db.reader() as conn:
        libs = conn.execute(
            "SELECT l.id, l.name, l.root, (SELECT count(*) FROM library_files f WHERE f.library_id = l.id "
            "AND f.state != 'vanished') FROM libraries l WHERE l.kind = 'external' ORDER BY l.id").fetchall()
    for _lib_id, name, root, known in libs:
        path = Path(root)
        try:
            if not path.is_dir():
                problems.append(f"The library folder {root} ({name}) is missing: is the disk or share mounted? "
                                "Its photos are kept and its scans wait until it is back.")
            elif known and not any(os.scandir(path)):
                problems.append(f"The library folder {root} ({name}) is empty but photobox knows {known} files "
                                "there: is the disk or share mounted? Nothing is marked missing meanwhile.")
        except OSError as exc:
            problems.append(f"The library folder {root} ({name}) cannot be read: {exc}")
    return problems


@feature.every(60, "storage-check")
async def refresh_problems(box: Photobox) -> None:
    """Periodic: recompute :attr:`Photobox.storage_problems` (external library folders)."""
    import asyncio

    if getattr(box, "_storage_check_running", False):
        return  # the last check is still stuck on a hung mount: do not pile up threads
    box._storage_check_running = True
    try:
        box.storage_problems = await asyncio.to_thread(library_problems, box)
    finally:
        box._storage_check_running = False
