"""Scheduled online backups of photobox.db into ``backups/``, verified, with retention.

A backup is taken with SQLite's backup API from a read-only connection that holds one read
transaction for the whole copy, so it is a consistent snapshot while the app keeps writing
(WAL readers never block the writer). It is written as ``<name>.partial``, checked with
``PRAGMA quick_check`` and its schema version, fsync'd, and only then renamed into place:
every ``photobox-*.db`` in ``backups/`` is complete and was verified when made. A crash
mid-copy leaves only a ``.partial`` file, which :func:`clean_partials` removes at the next
start. Next to each backup, a JSON sidecar export (:mod:`photobox.safety.sidecar`) made
from the backup itself says in plain text what the user did (albums, favourites, people…).

Retention keeps the newest backup of each of the last ``backup_daily_keep`` days that have
one, and the first backup of each of the last ``backup_monthly_keep`` months. Backups made
before a schema upgrade or a restore (``pre-*.db``) are never deleted automatically.
"""

from __future__ import annotations

import calendar
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from photobox.db.connection import connect
from photobox.jobs import REGISTRY, Job

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BackupError", "BackupFile", "apply_retention", "clean_partials", "copy_database", "list_backups",
           "make_backup", "queue_backup_if_due", "verify_database_file"]

log = logging.getLogger(__name__)

PREFIX = "photobox-"
#: Seconds to sleep between backup steps; 0 in use. The crash test raises it to make a slow
#: backup it can kill in the middle.
STEP_PAUSE = 0.0
_SCHEDULED = re.compile(r"^photobox-(\d{8})-(\d{6})(?:-(\d+))?\.db$")


class BackupError(RuntimeError):
    """A backup could not be made, or a file is not a usable photobox database."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One database file in ``backups/``."""

    path: Path
    created_at: float      # UTC epoch seconds, from the name (scheduled) or the file's mtime
    size: int
    scheduled: bool        # a ``photobox-*.db`` (retention applies; verified when made)
    sidecar: Path | None   # the JSON export next to it, if any

    @property
    def name(self) -> str:
        return self.path.name


def _stamp(now: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))


def _parse_stamp(name: str) -> float | None:
    m = _SCHEDULED.match(name)
    if not m:
        return None
    return float(calendar.timegm(time.strptime(m[1] + m[2], "%Y%m%d%H%M%S")))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_database_file(path: Path, *, full: bool = False) -> dict:
    """Check that ``path`` is a whole photobox database this code can use.

    Runs ``PRAGMA quick_check`` (``integrity_check`` when ``full``), requires the
    ``schema_migrations`` and ``meta`` tables, and refuses a schema newer than the newest
    migration here (as :class:`photobox.db.migrate.SchemaTooNewError` does at startup).

    Returns:
        ``{"schema": int, "assets": int, "check": "ok"}``.

    Raises:
        BackupError: with a message fit to show the user.
    """
    from photobox.db.migrate import available

    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"{path.name} is not an SQLite database")
    try:
        conn = connect(path, readonly=True)
    except apsw.Error as exc:
        raise BackupError(f"{path.name} cannot be opened: {exc}") from None
    try:
        pragma = "integrity_check" if full else "quick_check"
        result = conn.execute(f"PRAGMA {pragma}").fetchall()
        if [r[0] for r in result] != ["ok"]:
            raise BackupError(f"{path.name} is damaged: {'; '.join(str(r[0]) for r in result[:3])}")
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if not {"schema_migrations", "meta"} <= tables:
            raise BackupError(f"{path.name} is an SQLite file but not a photobox database")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        latest = available()[-1].version
        if version > latest:
            raise BackupError(f"{path.name} has schema version {version}, but this photobox only knows up to "
                              f"{latest}: it was made by a newer photobox. Upgrade photobox first.")
        assets = conn.execute("SELECT count(*) FROM assets").fetchone()[0] if "assets" in tables else 0
    except apsw.Error as exc:
        raise BackupError(f"{path.name} cannot be read: {exc}") from None
    finally:
        conn.close()
    return {"schema": version, "assets": assets, "check": "ok"}


def copy_database(source: Path, dest: Path, *, pages_per_step: int = 4096, pause: float = 0.0) -> Path:
    """Copy the live database ``source`` to ``dest`` consistently, verify it, then rename.

    The source connection holds ONE read transaction for the whole copy, so the copy is a
    single snapshot and concurrent writers (other connections) neither block nor restart
    it (https://sqlite.org/c3ref/backup_finish.html: a step inside an open read
    transaction uses it). ``pause`` sleeps between steps (tests make a slow backup).

    Raises:
        BackupError: the copy failed its check (the partial file is removed).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    import shutil

    needed = Path(source).stat().st_size
    wal = Path(str(source) + "-wal")
    needed += wal.stat().st_size if wal.exists() else 0
    free = shutil.disk_usage(dest.parent).free
    if free < needed + 64 * 1024 * 1024:
        raise BackupError(f"not enough free space in {dest.parent} for a backup: {needed / 1048576:.0f} MiB "
                          f"needed, {free / 1048576:.0f} MiB free")
    src = connect(source, readonly=True)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # start the read snapshot
        target = apsw.Connection(str(tmp))
        try:
            with target.backup("main", src, "main") as step:
                while not step.done:
                    step.step(pages_per_step)
                    if pause and not step.done:
                        time.sleep(pause)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        src.execute("COMMIT")
    except BaseException:
        tmp.unlink(missing_ok=True)  # disk full, I/O error: keep nothing half-made
        raise
    finally:
        src.close()
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        verify_database_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return dest


def clean_partials(folder: Path) -> int:
    """Delete ``*.partial`` files left in ``folder`` by an interrupted backup; return how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob("*.partial"):
        try:
            path.unlink()
            removed += 1
        except OSError as exc:  # pragma: no cover - permissions
            log.error("could not remove the partial backup %s: %s", path, exc)
    return removed


def list_backups(folder: Path) -> list[BackupFile]:
    """Every ``*.db`` in ``folder``, newest first (``.partial`` files are never listed)."""
    found = []
    if not folder.is_dir():
        return found
    for path in folder.iterdir():
        if not path.name.endswith(".db") or not path.is_file():
            continue
        st = path.stat()
        stamp = _parse_stamp(path.name)
        sidecar = path.with_suffix(".json")
        found.append(BackupFile(path, stamp if stamp is not None else st.st_mtime, st.st_size, stamp is not None,
                                sidecar if sidecar.is_file() else None))
    found.sort(key=lambda b: (b.created_at, b.name), reverse=True)
    return found


def apply_retention(folder: Path, *, daily_keep: int, monthly_keep: int) -> list[Path]:
    """Delete scheduled backups (and their sidecars) that retention no longer keeps.

    Kept: the newest backup of each of the ``daily_keep`` most recent days that have one,
    and the oldest backup of each of the ``monthly_keep`` most recent months. The newest
    backup is always kept. Returns the deleted database files.
    """
    scheduled = [b for b in list_backups(folder) if b.scheduled]  # newest first
    keep: set[Path] = set(b.path for b in scheduled[:1])
    days: dict[str, BackupFile] = {}
    for b in scheduled:
        days.setdefault(time.strftime("%Y%m%d", time.gmtime(b.created_at)), b)  # newest of the day
    for day in sorted(days, reverse=True)[:max(0, daily_keep)]:
        keep.add(days[day].path)
    months: dict[str, BackupFile] = {}
    for b in reversed(scheduled):
        months.setdefault(time.strftime("%Y%m", time.gmtime(b.created_at)), b)  # oldest of the month
    for month in sorted(months, reverse=True)[:max(0, monthly_keep)]:
        keep.add(months[month].path)
    deleted = []
    for b in scheduled:
        if b.path in keep:
            continue
        b.path.unlink(missing_ok=True)
        b.path.with_suffix(".json").unlink(missing_ok=True)
        deleted.append(b.path)
    return deleted


def make_backup(box: Photobox, dest: Path | None = None, *, sidecar: bool = True, retention: bool = True,
                pause: float | None = None) -> Path:
    """Back up ``box``'s database now; returns the verified file.

    Without ``dest`` the backup goes to ``backups/photobox-YYYYMMDD-HHMMSS.db`` (UTC) with its
    JSON sidecar, and retention runs afterwards. Runs in a thread (it reads the whole DB).
    """
    from photobox.safety import sidecar as sidecar_mod

    folder = box.path("backups")
    if dest is None:
        stamp = _stamp(box.clock())
        dest = folder / f"{PREFIX}{stamp}.db"
        n = 1
        while dest.exists():  # two backups in one second: never overwrite one
            dest = folder / f"{PREFIX}{stamp}-{n}.db"
            n += 1
    else:
        dest = Path(dest)
        if dest.exists():
            raise BackupError(f"{dest} exists; choose a new file name")
    started = time.monotonic()
    copy_database(box.db.path, dest, pause=STEP_PAUSE if pause is None else pause,
                  pages_per_step=64 if (pause or STEP_PAUSE) else 4096)
    if sidecar:
        sidecar_mod.export_file(dest, dest.with_suffix(".json"))
    log.info("backup %s made in %.1fs (%d bytes)", dest, time.monotonic() - started, dest.stat().st_size)
    if retention and dest.parent == folder:
        for old in apply_retention(folder, daily_keep=box.settings.backup_daily_keep,
                                   monthly_keep=box.settings.backup_monthly_keep):
            log.info("retention: removed the old backup %s", old.name)
    return dest


@REGISTRY.register("backup", concurrency=1, priority=80, max_attempts=3)
def backup_job(job: Job) -> None:
    """Job ``backup``: make one scheduled backup. At-least-once: a rerun after a crash makes
    a new, whole backup; the interrupted one left only a ``.partial`` that is cleaned up."""
    make_backup(job.context)


def newest_backup_time(folder: Path) -> float | None:
    """When the newest scheduled backup was made (None: there is none)."""
    scheduled = [b for b in list_backups(folder) if b.scheduled]
    return scheduled[0].created_at if scheduled else None


async def queue_backup_if_due(box: Photobox) -> bool:
    """Periodic: queue a ``backup`` job when the newest backup is older than the interval."""
    import asyncio

    hours = box.settings.backup_interval_hours
    if hours <= 0:
        return False
    now = box.clock()
    newest = await asyncio.to_thread(newest_backup_time, box.path("backups"))
    if newest is not None and now - newest < hours * 3600 - 60:
        return False
    if newest is None and not await box.db.read(lambda c: c.execute("SELECT 1 FROM assets LIMIT 1").fetchone()):
        return False  # a brand-new, empty library: nothing worth a backup yet
    row = await box.db.read(lambda c: c.execute(
        "SELECT state, updated_at FROM jobs WHERE kind = 'backup' AND target = 'scheduled'").fetchone())
    if row is not None and (row[0] in ("queued", "running") or (row[0] == "failed" and now - row[1] < 3600)):
        return False  # one at a time; a failing backup is retried hourly, not every poll
    await box.scheduler.enqueue("backup", "scheduled", force=True)
    return True
