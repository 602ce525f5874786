"""The one verified copier of a photobox database, and the check of a database file.

:func:`copy_database` takes a consistent snapshot with SQLite's backup API (one read
transaction for the whole copy, so writers go on), checks the free space first, writes
``<dest>.partial``, fsyncs and verifies it (:func:`verify_database_file`), then renames it
into place and fsyncs the folder: a copy under its final name is whole and was verified.
Scheduled backups, ``photobox backup``, the copies before an upgrade or a restore, and a
staged restore all come through here. A copy in progress ``flock``s its ``.partial``, so a
clean-up in another process never removes a copy still being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import apsw

from photobox.db.connection import connect

__all__ = ["BackupError", "copy_database", "fsync_dir", "owner_partial", "remove_unless_claimed",
           "verify_database_file"]


class BackupError(RuntimeError):
    """A backup could not be made, or a file is not a usable photobox database."""


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


def owner_partial(leftover: Path) -> Path:
    """The database ``.partial`` whose claim covers ``leftover`` (its journal, its export)."""
    name = leftover.name
    if name.endswith("-journal"):
        name = name[:-len("-journal")]
    if name.endswith(".json.partial"):
        name = name[:-len(".json.partial")] + ".db.partial"
    return leftover.with_name(name)


def remove_unless_claimed(path: Path, owner: Path) -> bool:
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
