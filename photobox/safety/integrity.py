"""Re-verify originals' checksums in time-boxed, checkpointed slices; find missing and orphaned files.

A *pass* walks every asset by id, re-hashing its original (streamed, 1 MiB at a time) and
comparing with the stored SHA-1, then walks ``library/`` (the upload library) in sorted
order looking for files no asset or library file knows (orphans, e.g. left by a crash
between deleting a row and its file). Each slice stops after ``integrity_slice_seconds``
or once it has done its share of the pass (the rest divided by the days left of
``integrity_days``), and checkpoints its cursor in ``meta`` after every batch, so a
restart resumes where it stopped. Findings go to ``integrity_issues``; nothing is ever
deleted, moved or marked offline here: a person decides.

Assets of an external library whose folder is missing (unmounted disk) are skipped, not
reported missing: see :mod:`photobox.datadir`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from photobox.datadir.storage import safe_join
from photobox.jobs import Job
from photobox.library.paths import UPLOAD_LIBRARY_ID, library_root
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["adopt_orphans", "list_issues", "load_state", "queue_slice_if_due", "run_pass", "run_slice"]

feature = Feature("integrity")

STATE_KEY = "integrity.state"
_BATCH = 100
_EMPTY_STATE = {"phase": "assets", "cursor": 0, "orphan_cursor": "", "pass_started_at": None,
                "pass_finished_at": None, "last_slice_at": None, "checked": 0, "bytes": 0}


def load_state(conn: apsw.Connection) -> dict:
    """The checkpoint of the current pass (see the module docstring)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (STATE_KEY,)).fetchone()
    return {**_EMPTY_STATE, **(json.loads(row[0]) if row else {})}


def _save_state(conn: apsw.Connection, state: dict) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (STATE_KEY, json.dumps(state)))


def _report(conn: apsw.Connection, kind: str, library_id: int, rel_path: str, asset_id: int | None, detail: str,
            now: float) -> None:
    conn.execute(
        "INSERT INTO integrity_issues (kind, library_id, rel_path, asset_id, detail, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, library_id, rel_path) DO UPDATE SET "
        "asset_id = excluded.asset_id, detail = excluded.detail, last_seen = excluded.last_seen, "
        "first_seen = CASE WHEN resolved_at IS NULL THEN first_seen ELSE excluded.first_seen END, resolved_at = NULL",
        (kind, library_id, rel_path, asset_id, detail, now, now))


def _resolve(conn: apsw.Connection, library_id: int, rel_path: str, kinds: tuple[str, ...], now: float) -> None:
    marks = ",".join("?" * len(kinds))
    conn.execute(f"UPDATE integrity_issues SET resolved_at = ? WHERE library_id = ? AND rel_path = ? "
                 f"AND kind IN ({marks}) AND resolved_at IS NULL", (now, library_id, rel_path, *kinds))


def _sha1(path: Path) -> tuple[bytes, int]:
    h = hashlib.sha1()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.digest(), size


def _check_asset(box: Photobox, roots: dict[int, Path | None], row: tuple) -> tuple[str, str, int]:
    """Verify one asset; returns (result, detail, bytes read). result: ok/missing/changed/unreadable/skipped."""
    _asset_id, library_id, rel_path, checksum, offline = row
    root = roots.get(library_id)
    if root is None or offline:
        return "skipped", "", 0
    try:
        path = safe_join(root, rel_path)
    except ValueError as exc:
        return "unreadable", str(exc), 0
    try:
        digest, size = _sha1(path)
    except FileNotFoundError:
        return "missing", "the original file is not there", 0
    except OSError as exc:
        return "unreadable", f"{type(exc).__name__}: {exc}", 0
    if digest != checksum:
        return "changed", f"checksum {digest.hex()} differs from the recorded {checksum.hex()}", size
    return "ok", "", size


def _roots(box: Photobox) -> dict[int, Path | None]:
    """Library id → root folder, or None when the folder is missing (skipped, not reported)."""
    with box.db.reader() as conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM libraries")]
        roots = {i: library_root(box, conn, i) for i in ids}
    return {i: (r if r.is_dir() else None) for i, r in roots.items()}


def _sorted_files(root: Path, after: str) -> Iterator[str]:
    """Relative paths of files under ``root``, depth first in name order, only those after
    ``after``; folders whose whole subtree sorts before ``after`` are not even listed, so a
    walk resumes cheaply. Order and cursor compare path components as tuples."""
    after_parts = tuple(after.split("/")) if after else ()

    def walk(folder: str, prefix: tuple[str, ...]) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            parts = prefix + (entry.name,)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if parts < after_parts and after_parts[:len(parts)] != parts:
                        continue
                    yield from walk(entry.path, parts)
                elif entry.is_file(follow_symlinks=False) and parts > after_parts:
                    yield "/".join(parts)
            except OSError:
                continue

    yield from walk(str(root), ())


def run_slice(box: Photobox, *, budget_seconds: float | None = None, spread: bool = True,
              should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Do one slice of the current pass (starting a pass if none runs); return its counts.

    Args:
        budget_seconds: stop after this long (default ``integrity_slice_seconds``; 0 or less
            means no limit).
        spread: do at most the pass's share for today (remaining ÷ days left); off for the CLI.
    """
    budget = box.settings.integrity_slice_seconds if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget if budget and budget > 0 else math.inf
    now = box.clock()
    with box.db.transaction() as conn:
        state = load_state(conn)
        if state["pass_started_at"] is None:
            state = _new_pass(state, now)
        state["last_slice_at"] = now
        _save_state(conn, state)
        remaining = conn.execute("SELECT count(*) FROM assets WHERE id > ?", (state["cursor"],)).fetchone()[0]
    quota = math.inf
    days = box.settings.integrity_days
    if spread and days > 0:
        days_left = max(1.0, days - (now - state["pass_started_at"]) / 86400)
        quota = max(_BATCH, math.ceil(remaining / days_left))
    return _advance(box, state, now=now, quota=quota, persist=True,
                    out_of_time=lambda: time.monotonic() > deadline or should_stop())


def _new_pass(previous: dict, now: float) -> dict:
    return {**_EMPTY_STATE, "pass_started_at": now, "last_pass_finished_at": previous.get("pass_finished_at"),
            "last_pass_checked": previous.get("last_pass_checked")}


def _advance(box: Photobox, state: dict, *, now: float, quota: float, persist: bool,
             out_of_time: Callable[[], bool]) -> dict:
    """Check assets from ``state``'s cursor on, then look for orphans, until the pass is done,
    ``quota`` files are checked or ``out_of_time()``; return the counts.

    ``persist``: checkpoint the cursor in ``meta`` after every batch (the scheduled pass). A
    fresh pass (:func:`run_pass`) keeps its cursor to itself, so a slice the server runs
    meanwhile neither moves it nor is moved by it; only its end is recorded.
    """
    counts = {"checked": 0, "ok": 0, "missing": 0, "changed": 0, "unreadable": 0, "skipped": 0, "orphan": 0,
              "bytes": 0, "finished": False}
    checkpoint = _save_state if persist else (lambda conn, state: None)
    roots = _roots(box)
    while state["phase"] == "assets":
        with box.db.reader() as conn:
            rows = conn.execute("SELECT id, library_id, rel_path, checksum, offline FROM assets WHERE id > ? "
                                "ORDER BY id LIMIT ?", (state["cursor"], _BATCH)).fetchall()
        if not rows:
            state["phase"] = "orphans"
            break
        results = []
        for row in rows:
            result, detail, size = _check_asset(box, roots, row)
            results.append((row, result, detail))
            counts[result] += 1
            counts["checked"] += 1
            counts["bytes"] += size
            state["cursor"] = row[0]
            if out_of_time() or counts["checked"] >= quota:
                break
        with box.db.transaction() as conn:
            for (asset_id, library_id, rel_path, _, _), result, detail in results:
                if result == "skipped":
                    continue
                if conn.execute("SELECT 1 FROM assets WHERE id = ? AND library_id = ? AND rel_path = ?",
                                (asset_id, library_id, rel_path)).fetchone() is None:
                    continue  # deleted or moved while we read it (a purge deletes the row, then the file)
                # What this check found replaces what an earlier pass found for the file.
                _resolve(conn, library_id, rel_path,
                         tuple(k for k in ("missing", "changed", "unreadable") if k != result), now)
                if result != "ok":
                    _report(conn, result, library_id, rel_path, asset_id, detail, now)
            state["checked"] += len(results)
            checkpoint(conn, state)
        if out_of_time() or counts["checked"] >= quota:
            return counts
    if state["phase"] == "orphans":
        library = box.path("library")
        batch: list[str] = []

        def flush() -> None:
            from photobox.library.ingest import INGEST_LOCK

            # Under the ingest lock: an upload places its file and inserts its row while
            # holding it, so a file seen mid-upload is known by the time we look it up.
            with INGEST_LOCK, box.db.transaction() as conn:
                for rel in batch:
                    known = conn.execute(
                        "SELECT 1 FROM assets WHERE library_id = ? AND rel_path = ? UNION ALL "
                        "SELECT 1 FROM library_files WHERE library_id = ? AND rel_path = ? AND state != 'vanished' "
                        "LIMIT 1", (UPLOAD_LIBRARY_ID, rel, UPLOAD_LIBRARY_ID, rel)).fetchone()
                    if known is None:
                        _report(conn, "orphan", UPLOAD_LIBRARY_ID, rel, None,
                                "a file in library/ that no photo in photobox points to", now)
                        counts["orphan"] += 1
                    else:
                        _resolve(conn, UPLOAD_LIBRARY_ID, rel, ("orphan",), now)
                if batch:
                    state["orphan_cursor"] = batch[-1]
                checkpoint(conn, state)
            batch.clear()

        for rel in _sorted_files(library, state["orphan_cursor"]):
            batch.append(rel)
            if len(batch) >= _BATCH:
                flush()
                if out_of_time():
                    return counts
        flush()
        with box.db.transaction() as conn:
            # Orphans not seen again in this pass are gone (or were adopted): resolved.
            conn.execute("UPDATE integrity_issues SET resolved_at = ? WHERE kind = 'orphan' AND resolved_at IS NULL "
                         "AND last_seen < ?", (now, state["pass_started_at"]))
            _save_state(conn, {**_EMPTY_STATE, "pass_finished_at": now, "last_slice_at": now,
                               "last_pass_started_at": state["pass_started_at"],
                               "last_pass_checked": state["checked"]})
        counts["finished"] = True
    return counts


def run_pass(box: Photobox, *, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Check every original now, from the first, without time limit (``photobox verify``).

    Always a fresh, whole pass: finishing a pass the server's slices left open would skip
    every file before its cursor. Its end is recorded as a finished pass, so the scheduled
    passes start again ``integrity_days`` later.
    """
    now = box.clock()
    with box.db.reader() as conn:
        state = _new_pass(load_state(conn), now)
    return _advance(box, state, now=now, quota=math.inf, persist=False, out_of_time=should_stop)


@feature.job("integrity", title="Checking originals", priority=-10, max_attempts=3)
def integrity_job(job: Job) -> None:
    """Job ``integrity``: one checkpointed slice (re-running it just continues the pass)."""
    run_slice(job.context, should_stop=job.should_stop)


def slice_due(state: dict, *, now: float, days: int) -> bool:
    """A slice is due once a day while a pass runs, and a new pass every ``days`` days."""
    if days <= 0:
        return False
    if state["pass_started_at"] is None:  # between passes: a new one every `days` days
        started = state.get("last_pass_started_at")
        return started is None or now - started >= days * 86400
    last = state.get("last_slice_at")
    return last is None or now - last >= 20 * 3600


@feature.every(3600, "integrity-schedule")
async def queue_slice_if_due(box: Photobox) -> bool:
    """Periodic: queue the ``integrity`` job when a slice is due."""
    state = await box.db.read(load_state)
    if state["pass_started_at"] is None and not await box.db.read(
            lambda c: c.execute("SELECT 1 FROM assets LIMIT 1").fetchone()):
        return False  # nothing to check yet
    if not slice_due(state, now=box.clock(), days=box.settings.integrity_days):
        return False
    await box.scheduler.enqueue("integrity", "slice", force=True)
    return True


def list_issues(conn: apsw.Connection, *, after_id: int = 0, limit: int = 100, open_only: bool = True) -> list[dict]:
    """Issues in id order after ``after_id`` (keyset pagination)."""
    rows = conn.execute(
        "SELECT i.id, i.kind, i.library_id, l.name, i.rel_path, i.asset_id, i.detail, i.first_seen, i.last_seen, "
        "i.resolved_at FROM integrity_issues i LEFT JOIN libraries l ON l.id = i.library_id "
        "WHERE i.id > ? AND (? = 0 OR i.resolved_at IS NULL) ORDER BY i.id LIMIT ?",
        (after_id, 1 if open_only else 0, limit)).fetchall()
    keys = ("id", "kind", "library_id", "library", "rel_path", "asset_id", "detail", "first_seen", "last_seen",
            "resolved_at")
    return [dict(zip(keys, r)) for r in rows]


def issue_counts(conn: apsw.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT kind, count(*) FROM integrity_issues WHERE resolved_at IS NULL GROUP BY kind"))


def adopt_orphans(box: Photobox) -> int:
    """Queue every file in ``library/`` that photobox does not know for ingest in place
    (``photobox rebuild``); returns how many were queued. Known files are left alone."""
    library = box.path("library")
    spec = box.scheduler.registry.get("ingest.file")
    queued = 0
    batch: list[tuple[str, int, float]] = []

    def flush() -> None:
        nonlocal queued
        from photobox.jobs import store as job_store

        now = box.clock()
        with box.db.transaction() as conn:
            for rel, size, mtime in batch:
                if conn.execute("SELECT 1 FROM library_files WHERE library_id = ? AND rel_path = ?",
                                (UPLOAD_LIBRARY_ID, rel)).fetchone():
                    continue
                conn.execute("INSERT INTO library_files (library_id, rel_path, size, mtime, state) "
                             "VALUES (?, ?, ?, ?, 'new')", (UPLOAD_LIBRARY_ID, rel, size, mtime))
                job_store.enqueue(conn, "ingest.file", str(conn.last_insert_rowid()), now=now,
                                  priority=spec.priority if spec else 50, max_attempts=box.settings.job_max_attempts)
                queued += 1
        batch.clear()
        box.scheduler.notify()

    for rel in _sorted_files(library, ""):
        st = (library / rel).stat()
        batch.append((rel, st.st_size, st.st_mtime))
        if len(batch) >= 500:
            flush()
    flush()
    return queued


@feature.check("integrity")
def _doctor(settings):
    from photobox.safety.doctor import check_integrity

    return check_integrity(settings)
