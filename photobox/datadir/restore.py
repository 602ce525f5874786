"""Restoring photobox.db from a backup: verified, staged, applied before the database opens.

Rule (why staged): the running server holds the database open with a write connection, a
reader pool and a WAL; swapping the file under it would corrupt it. So a restore is never
applied to an open database. ``photobox restore FILE`` and the Settings page verify the
file and copy it to ``photobox.db.restore`` (temp name + rename, so it is whole or absent).
Whoever next opens the data folder *without a server running on it* (the server at its
start, or the CLI when no server runs) applies it: it takes a restore point of the current
database into ``backups/pre-restore-….db``, checkpoints and closes the current WAL, removes
the stale ``-wal``/``-shm`` files (an old WAL replayed onto another database would corrupt
it), then renames the staged file into place. "No server running" is an exclusive
``flock`` on ``.photobox-server.lock`` that the server holds for its whole life (released when
its process dies, so a kill -9 never leaves a stale lock): ``photobox serve`` takes it before it
starts granian (and refuses to start when it cannot), and its worker process, which opens the
database, works under its parent's lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

import apsw

from photobox.datadir.copy import BackupError, copy_database, fsync_dir, verify_database_file

__all__ = ["LOCK_NAME", "STAGED_NAME", "ServerLock", "apply_staged_restore", "server_running", "stage_restore",
           "staged_info"]

log = logging.getLogger(__name__)

STAGED_NAME = "photobox.db.restore"
LOCK_NAME = ".photobox-server.lock"


class ServerLock:
    """An exclusive, non-blocking ``flock`` on the data folder's lock file (released on close
    or when the process dies, so a kill -9 never leaves a stale lock)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The process id the holder wrote into the lock file (None: unknown)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def held_by_parent(self) -> bool:
        """Whether the lock is held by this process's parent: ``photobox serve`` takes the
        lock before granian starts its worker, and holds it for the worker's whole life."""
        return self.holder() == os.getppid() and server_running(self.path.parent)


def server_running(data_dir: Path) -> bool:
    """Whether a photobox server holds ``data_dir`` now."""
    if not (Path(data_dir) / LOCK_NAME).exists():
        return False
    lock = ServerLock(data_dir)
    if lock.acquire():
        lock.release()
        return False
    return True


def stage_restore(data_dir: Path, source: Path) -> dict:
    """Verify ``source`` fully and stage it as ``photobox.db.restore``; return its info.

    Raises:
        BackupError: not a photobox database, damaged, or from a newer photobox.
    """
    info = verify_database_file(Path(source), full=True)
    dest = Path(data_dir) / STAGED_NAME
    copy_database(Path(source), dest)
    return {**info, "source": str(source)}


def staged_info(data_dir: Path) -> dict | None:
    """What is staged (size, time) or None."""
    path = Path(data_dir) / STAGED_NAME
    if not path.is_file():
        return None
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "staged_at": st.st_mtime}


def apply_staged_restore(data_dir: Path, *, now: float | None = None) -> Path | None:
    """Apply a staged restore, if any; return the restore point made (or None).

    Call only while holding the :class:`ServerLock` and before opening the database. A
    staged file that fails its check is renamed ``*.rejected`` and the current database is
    kept.
    """
    data_dir = Path(data_dir)
    staged = data_dir / STAGED_NAME
    (data_dir / (STAGED_NAME + ".partial")).unlink(missing_ok=True)  # an interrupted staging
    if not staged.is_file():
        return None
    try:
        verify_database_file(staged)
    except BackupError as exc:
        log.error("the staged restore is not usable and was set aside: %s", exc)
        os.replace(staged, staged.with_name(STAGED_NAME + ".rejected"))
        return None
    db = data_dir / "photobox.db"
    point = None
    if db.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
        point = data_dir / "backups" / f"pre-restore-{stamp}.db"
        try:
            copy_database(db, point)
            # Fold the old WAL into the old file and close it, so no -wal of the old
            # database can ever be replayed onto the restored one.
            conn = apsw.Connection(str(db))
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except (BackupError, apsw.Error) as exc:
            # The current database is damaged (often why one restores): keep its files as
            # they are, moved aside, instead of a verified copy.
            log.error("the current database cannot be copied (%s); moving its files to backups/ as they are", exc)
            point = data_dir / "backups" / f"pre-restore-{stamp}-damaged.db"
            point.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                old = data_dir / f"photobox.db{suffix}"
                if old.exists():
                    os.replace(old, Path(str(point) + suffix))
    for suffix in ("-wal", "-shm", "-journal"):
        (data_dir / f"photobox.db{suffix}").unlink(missing_ok=True)
    os.replace(staged, db)
    fsync_dir(data_dir)
    log.warning("restored the database from a staged backup; the previous one is kept as %s", point)
    return point
