"""Scheduled online backups of photobox.db into ``backups/``, verified, with retention.

A backup is taken with SQLite's backup API from a read-only connection that holds one read
transaction for the whole copy, so it is a consistent snapshot while the app keeps writing
(WAL readers never block the writer). It is written as ``<name>.partial``, checked with
``PRAGMA quick_check`` and its schema version, fsync'd, and only then renamed into place:
every ``photobox-*.db`` in ``backups/`` is complete and was verified when made. Next to
each backup, a JSON sidecar export (:mod:`photobox.safety.sidecar`) made from the verified
copy says in plain text what the user did (albums, favourites, people…); it is written
*before* the copy gets its final name, so a backup under its final name has its export.

A crash mid-copy leaves a ``.partial`` file (and SQLite's ``.partial-journal``, and maybe a
``.json.partial``); :func:`clean_partials` removes them at every start and before every
backup. A backup in progress ``flock``s its ``.partial`` for its whole life, so clean-up in
another process (the CLI next to the server) never removes a copy still being written.
Every copy of the database (scheduled, ``photobox backup``, pre-upgrade, pre-restore,
staging a restore) goes through :func:`copy_database`.

Retention keeps the newest backup of each of the last ``backup_daily_keep`` days that have
one, and the first backup of each of the last ``backup_monthly_keep`` months. Backups made
before a schema upgrade or a restore (``pre-*.db``) are never deleted automatically.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from photobox.datadir.copy import (
    BackupError,
    copy_database,
    owner_partial,
    remove_unless_claimed,
)
from photobox.jobs import Job
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BackupFile", "apply_retention", "clean_partials", "feature", "list_backups", "make_backup",
           "queue_backup_if_due"]

log = logging.getLogger(__name__)

feature = Feature("backups")

PREFIX = "photobox-"
#: Seconds to sleep between backup steps; 0 in use. The crash test raises it to make a slow
#: backup it can kill in the middle.
STEP_PAUSE = 0.0
_SCHEDULED = re.compile(r"^photobox-(\d{8})-(\d{6})(?:-(\d+))?\.db$")


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


def clean_partials(folder: Path) -> int:
    """Delete what interrupted backups left in ``folder``; return how many files.

    That is ``*.partial`` copies and exports, SQLite's ``*.partial-journal`` beside them,
    and exports (``photobox-*.json``) whose backup never got its name. A file belonging to
    a backup still being written, here or in another process, is left alone.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    leftovers = [*folder.glob("*.partial"), *folder.glob("*.partial-journal")]
    leftovers += [p for p in folder.glob(f"{PREFIX}*.json") if _parse_stamp(p.with_suffix(".db").name) is not None
                  and not p.with_suffix(".db").exists()]
    for path in leftovers:
        owner = owner_partial(path) if path.suffix != ".json" else path.with_suffix(".db.partial")
        try:
            removed += remove_unless_claimed(path, owner)
        except OSError as exc:  # pragma: no cover - permissions
            log.error("could not remove the leftover backup file %s: %s", path, exc)
    return removed


@feature.on_open
def _clean_at_start(box: Photobox) -> None:
    if clean_partials(box.path("backups")):  # a backup still being written is left alone
        log.warning("removed partial backup file(s) left by an interrupted backup")


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
    if clean_partials(folder):
        log.warning("removed partial backup file(s) left by an interrupted backup")
    if dest is None:
        stamp = _stamp(box.clock())
        dest = folder / f"{PREFIX}{stamp}.db"
        n = 1
        # Two backups in one second (the CLI next to the server): never overwrite one, nor
        # write into one still being made.
        while dest.exists() or dest.with_name(dest.name + ".partial").exists():
            dest = folder / f"{PREFIX}{stamp}-{n}.db"
            n += 1
    else:
        dest = Path(dest)
        if dest.exists():
            raise BackupError(f"{dest} exists; choose a new file name")
    started = time.monotonic()

    def export(partial: Path) -> None:  # the export exists before the backup has its name
        sidecar_mod.export_file(partial, dest.with_suffix(".json"))

    copy_database(box.db.path, dest, pause=STEP_PAUSE if pause is None else pause,
                  pages_per_step=64 if (pause or STEP_PAUSE) else 4096, before_rename=export if sidecar else None)
    log.info("backup %s made in %.1fs (%d bytes)", dest, time.monotonic() - started, dest.stat().st_size)
    if retention and dest.parent == folder:
        for old in apply_retention(folder, daily_keep=box.settings.backup_daily_keep,
                                   monthly_keep=box.settings.backup_monthly_keep):
            log.info("retention: removed the old backup %s", old.name)
    return dest


@feature.job("backup", title="Database backups", priority=80, max_attempts=3)
def backup_job(job: Job) -> None:
    """Job ``backup``: make one scheduled backup. At-least-once: a rerun after a crash makes
    a new, whole backup; the interrupted one left only ``.partial`` files, cleaned up first."""
    make_backup(job.context)


def newest_backup_time(folder: Path) -> float | None:
    """When the newest scheduled backup was made (None: there is none)."""
    scheduled = [b for b in list_backups(folder) if b.scheduled]
    return scheduled[0].created_at if scheduled else None


@feature.every(600, "backup-schedule")
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


@feature.commands
def _commands(commands) -> None:
    from photobox.safety.commands import add_commands

    add_commands(commands)


@feature.routes
def _routes():
    from photobox.safety import views as backups

    return backups.ROUTES


feature.settings_section("settings_safety.html")(lambda box, conn: {})


@feature.check("backups")
def _doctor(settings):
    from photobox.safety.doctor import check_backups

    return check_backups(settings)
