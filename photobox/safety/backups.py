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
import contextlib
import fcntl
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from photobox.db.connection import connect
from photobox.jobs import Job
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BackupError", "BackupFile", "apply_retention", "clean_partials", "copy_database", "fsync_dir",
           "list_backups", "make_backup", "queue_backup_if_due", "verify_database_file"]

log = logging.getLogger(__name__)

feature = Feature("backups")

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


def fsync_dir(folder: Path) -> None:
    """Put a rename in ``folder`` on disk (its directory entry); filesystems that cannot fsync
    a directory (exFAT, network mounts) are not an error."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
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


#: ``.partial`` files being written by this process (their flock alone cannot tell: a
#: second open file description of ours would conflict with it, and closing it would drop
#: SQLite's POSIX locks on that file).
_claimed: set[str] = set()
_claimed_lock = threading.Lock()


@contextlib.contextmanager
def _claim(partial: Path) -> Iterator[None]:
    """Own ``partial`` while a copy is written to it: registered in this process and
    ``flock``-ed against others (released when the process dies, so a kill -9 leaves a
    file that the next clean-up may remove). A leftover of a dead backup is emptied.

    Raises:
        BackupError: another backup is writing this very file now.
    """
    key = str(partial)
    with _claimed_lock:
        if key in _claimed:
            raise BackupError(f"another backup is writing {partial.name} now")
        _claimed.add(key)
    fd = None
    try:
        while fd is None:
            fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise BackupError(f"another backup is writing {partial.name} now") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(partial))
            except FileNotFoundError:
                same = False
            if not same:  # a clean-up removed the leftover between our open and our lock
                os.close(fd)
                fd = None
        os.ftruncate(fd, 0)
        Path(key + "-journal").unlink(missing_ok=True)  # a stale hot journal must never touch the new copy
        yield
    finally:
        if fd is not None:
            os.close(fd)  # after every SQLite connection to the file is closed (see _claimed)
        with _claimed_lock:
            _claimed.discard(key)


def _owner_partial(leftover: Path) -> Path:
    """The database ``.partial`` whose claim covers ``leftover`` (its journal, its export)."""
    name = leftover.name
    if name.endswith("-journal"):
        name = name[:-len("-journal")]
    if name.endswith(".json.partial"):
        name = name[:-len(".json.partial")] + ".db.partial"
    return leftover.with_name(name)


def _remove_unless_claimed(path: Path, owner: Path) -> bool:
    """Delete ``path`` unless a backup (this process or another) is writing ``owner`` now;
    the owner's lock is held while deleting, so a backup cannot start on it meanwhile."""
    with _claimed_lock:
        if str(owner) in _claimed:
            return False
        try:
            fd = os.open(owner, os.O_RDONLY)
        except FileNotFoundError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            return True
        except (BlockingIOError, FileNotFoundError):
            return False
        finally:
            if fd is not None:
                os.close(fd)


def copy_database(source: Path, dest: Path, *, pages_per_step: int = 4096, pause: float = 0.0,
                  before_rename: Callable[[Path], None] | None = None) -> Path:
    """Copy the live database ``source`` to ``dest`` consistently, verify it, then rename.

    The one copier of photobox.db: backups, the pre-upgrade and pre-restore copies and a
    staged restore all come through here. It checks the free space first, and the source
    connection holds ONE read transaction for the whole copy, so the copy is a single
    snapshot and concurrent writers (other connections) neither block nor restart it
    (https://sqlite.org/c3ref/backup_finish.html: a step inside an open read transaction
    uses it). The copy is fsync'd and checked (:func:`verify_database_file`), then
    ``before_rename(partial)`` runs (the JSON export), then the rename and a directory
    fsync. ``pause`` sleeps between steps (tests make a slow backup).

    Raises:
        BackupError: not enough space, another backup writes the same file, or the copy
            failed its check (nothing is left under the final name, the partial is removed).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    needed = Path(source).stat().st_size
    wal = Path(str(source) + "-wal")
    needed += wal.stat().st_size if wal.exists() else 0
    free = shutil.disk_usage(dest.parent).free
    if free < needed + 64 * 1024 * 1024:
        raise BackupError(f"not enough free space in {dest.parent} for a backup: {needed / 1048576:.0f} MiB "
                          f"needed, {free / 1048576:.0f} MiB free")
    with _claim(tmp):
        try:
            _copy_pages(source, tmp, pages_per_step=pages_per_step, pause=pause)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            verify_database_file(tmp)
            if before_rename is not None:
                before_rename(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)  # disk full, I/O error, a failed check: keep nothing half-made
            Path(str(tmp) + "-journal").unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return dest


def _copy_pages(source: Path, tmp: Path, *, pages_per_step: int, pause: float) -> None:
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
    finally:
        src.close()


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
        owner = _owner_partial(path) if path.suffix != ".json" else path.with_suffix(".db.partial")
        try:
            removed += _remove_unless_claimed(path, owner)
        except OSError as exc:  # pragma: no cover - permissions
            log.error("could not remove the leftover backup file %s: %s", path, exc)
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


@feature.job("backup", title="Database backup", priority=80, max_attempts=3)
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
    from photobox.web.views import backups

    return backups.ROUTES


@feature.check("backups")
def _doctor(settings):
    from photobox.safety.doctor import check_backups

    return check_backups(settings)
