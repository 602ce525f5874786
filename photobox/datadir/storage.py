"""Getting original bytes onto disk safely.

An incoming file (upload, import, WebDAV) is streamed into ``data/tmp/<random>.part`` while
its SHA-1 is computed, fsync'd, and only then moved into the library by a rename on the same
filesystem, so the library never holds a partial file: a crash leaves at most a ``.part``
file in ``tmp/``, which the next start removes.

The rename and the asset row's commit cannot be one atomic step, so the move is journalled:
a :class:`PlacementJournal` (``tmp/<random>.placing``) names the library file before it is
created and is removed after the row commits. A crash in between leaves the journal, and the
next start (:func:`recover_placements`) removes the placed file if its row never committed,
so ``library/`` never holds a file that belongs to no asset.

Free space: every way in (upload, resumable upload, WebDAV, the phone share target) keeps
the ``disk_reserve_mb`` setting free on the data disk, so the database, its backups and the
system keep room to work. :func:`ensure_space` refuses an upload whose size is known before
a byte is stored, and :class:`TempWriter` (given the reserve) checks again before every
batch it writes, which is what stops an upload of unknown size (chunked, streamed).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
import unicodedata
from pathlib import Path, PurePosixPath

__all__ = ["DiskFullError", "PlacementJournal", "TempWriter", "clean_temp", "ensure_space", "place_original",
           "recover_placements", "safe_file_name", "safe_join"]

_FLUSH_BYTES = 1 << 20
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


class DiskFullError(OSError):
    """No space left for an incoming original; nothing was kept."""

    def __str__(self) -> str:  # the message users see, without OSError's "[Errno 28]" prefix
        return self.strerror or super().__str__()


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 10 * 2**20 else f"{n / 2**20:.1f} MiB"


def ensure_space(folder: Path, incoming: int, reserve: int, *, stored: int | None = None) -> None:
    """Refuse writing ``incoming`` more bytes into ``folder`` when that would leave less than
    ``reserve`` bytes free on its disk.

    ``stored`` is what the same upload already wrote (a streamed upload of unknown size);
    the message then says the upload was stopped rather than refused up front.

    Raises:
        DiskFullError: with a message saying how much is free, how much is kept in
            reserve and how much more space the upload needs.
    """
    free = shutil.disk_usage(folder).free
    if free - incoming >= reserve:
        return
    short = incoming + reserve - free
    if stored is None:
        what = (f"this upload needs {_mib(incoming)}, so at least {_mib(short)} more must be freed; "
                f"nothing was stored")
    else:
        what = (f"the upload was stopped after {_mib(stored)} and not kept; free more space than it needs "
                f"and send it again")
    raise DiskFullError(errno.ENOSPC, f"not enough free space on the photobox disk: {_mib(free)} free, "
                                      f"{_mib(reserve)} kept in reserve; {what}")


def safe_file_name(name: str, fallback: str = "file") -> str:
    """A file name safe to create: no directories, control characters, or leading dots.

    The user's name is kept as far as possible (it is what they will recognise), but
    only its last path component counts: ``../../etc/passwd`` becomes ``passwd``.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".")
    if not name:
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem.encode()[:180].decode(errors="ignore") or fallback
    ext = ext.encode()[:16].decode(errors="ignore")
    return f"{stem}.{ext}" if ext else stem


def safe_join(root: Path, rel_path: str) -> Path:
    """``root / rel_path``, refusing any path that would leave ``root`` (``..``, absolute, links)."""
    rel = PurePosixPath(rel_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"unsafe path: {rel_path!r}")
    path = root.joinpath(*rel.parts)
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise ValueError(f"path leaves its library: {rel_path!r}")
    return path


# Every process that writes temp files holds an exclusive flock on its own
# ``tmp/owner-<token>.lock`` for as long as it lives and names its files ``<token>-….part``.
# Start-up clean-up then removes only files of owners whose lock is free (dead processes), so
# the CLI opening the data folder never deletes an upload the running server is receiving.
# The kernel drops the lock when the process dies, however it dies.
_owners: dict[tuple[int, Path], tuple[str, int]] = {}
_owners_lock = threading.Lock()


def _owner_token(tmp_dir: Path) -> str:
    key = (os.getpid(), tmp_dir.resolve())
    with _owners_lock:
        if key not in _owners:
            token = secrets.token_hex(6)
            # Lock first, then make it visible under its final name: clean-up never sees an
            # unlocked lock file of a live process.
            pending = tmp_dir / f".owner-{token}.new"
            fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(pending, tmp_dir / f"owner-{token}.lock")
            _owners[key] = (token, fd)
        return _owners[key][0]


def _live_owners(tmp_dir: Path) -> set[str]:
    """Tokens of processes alive and holding their lock; lock files of dead ones are removed."""
    live = set()
    for lock in tmp_dir.glob("owner-*.lock"):
        token = lock.stem.removeprefix("owner-")
        if any(t == token for (pid, _), (t, _) in _owners.items() if pid == os.getpid()):
            live.add(token)
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            live.add(token)
        else:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return live


class TempWriter:
    """Stream bytes to a temp file in ``tmp_dir`` while computing SHA-1 and counting them.

    With a ``reserve`` (bytes), every batch is checked with :func:`ensure_space` before it
    is written: the upload stops with :class:`DiskFullError` rather than eat into it.
    """

    def __init__(self, tmp_dir: Path, *, reserve: int = 0) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.reserve = reserve
        self.path = tmp_dir / f"{_owner_token(tmp_dir)}-{secrets.token_hex(12)}.part"
        self._file = open(self.path, "xb")
        self._sha1 = hashlib.sha1()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.size = 0

    def _flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self.reserve:
            ensure_space(self.path.parent, len(data), self.reserve, stored=self.size - len(data))
        self._sha1.update(data)  # hashlib releases the GIL for large buffers
        try:
            self._file.write(data)
        except OSError as exc:
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise DiskFullError(exc.errno, "the disk is full: the upload was not kept") from exc
            raise

    def write_sync(self, data: bytes) -> None:
        """Add bytes (from a thread)."""
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= _FLUSH_BYTES:
            self._flush()

    async def write(self, data: bytes) -> None:
        """Add bytes from the event loop; disk writes happen in a thread in 1 MiB batches."""
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= _FLUSH_BYTES:
            await asyncio.to_thread(self._flush)

    def finish_sync(self) -> tuple[Path, bytes, int]:
        """Flush, fsync and close; returns (path, sha1 digest, size)."""
        try:
            self._flush()
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            if exc.errno in (28, 122):
                raise DiskFullError(exc.errno, "the disk is full: the upload was not kept") from exc
            raise
        finally:
            self._file.close()
        return self.path, self._sha1.digest(), self.size

    async def finish(self) -> tuple[Path, bytes, int]:
        return await asyncio.to_thread(self.finish_sync)

    def discard(self) -> None:
        """Close and delete the temp file (an interrupted or refused upload keeps nothing)."""
        try:
            self._file.close()
        finally:
            self.path.unlink(missing_ok=True)


def clean_temp(tmp_dir: Path) -> int:
    """Remove ``.part`` files left by a crash; return how many. Called at start-up.

    Files of a process that is still running (its owner lock is held) are left alone.
    """
    n = 0
    if tmp_dir.is_dir():
        live = _live_owners(tmp_dir)
        for part in tmp_dir.glob("*.part"):
            if part.name.split("-", 1)[0] in live:
                continue
            part.unlink(missing_ok=True)
            n += 1
        for stale in tmp_dir.glob(".owner-*.new"):  # a process died between creating and naming its lock
            if stale.stat().st_mtime < time.time() - 60:
                stale.unlink(missing_ok=True)
    return n


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (exFAT, network mounts) cannot fsync a directory
    finally:
        os.close(fd)


class PlacementJournal:
    """Write-ahead note of the library file an incoming original is about to become.

    Use as a context manager around "place the file, commit its row". While its owner lives
    the note is ``flock``-ed, so another process opening the same data folder (the CLI next to
    the server) never recovers a placement that is still in progress; a crash drops the lock.
    Leaving the block with an exception removes the placed file (its row did not commit);
    leaving it normally keeps the file. Either way the note is deleted.
    """

    def __init__(self, tmp_dir: Path, library_root: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.library_root = library_root
        self.path = tmp_dir / f"{secrets.token_hex(12)}.placing"
        self.placed: Path | None = None
        self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def note(self, rel_path: str) -> None:
        """Record (durably) the library path about to be created, before creating it."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, rel_path.encode(), 0)
        os.fsync(self._fd)

    def __enter__(self) -> PlacementJournal:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and self.placed is not None:
                self.placed.unlink(missing_ok=True)
        finally:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)


def recover_placements(tmp_dir: Path, library_root: Path, committed) -> int:
    """Finish what a crash interrupted: for every journal no live process holds, remove the
    library file it names unless ``committed(rel_path)`` says its asset row exists. Returns how
    many orphan files were removed. Called at start-up, after the database is open."""
    removed = 0
    if not tmp_dir.is_dir():
        return 0
    for note in tmp_dir.glob("*.placing"):
        try:
            fd = os.open(note, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another process is placing this file right now
            rel = os.read(fd, 4096).decode(errors="replace")
            if rel:
                try:
                    path = safe_join(library_root, rel)
                except ValueError:
                    path = None
                if path is not None and path.is_file() and not committed(rel):
                    path.unlink()
                    removed += 1
            note.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


def place_original(tmp_path: Path, library_root: Path, original_name: str, taken_at: str | None,
                   journal: PlacementJournal | None = None) -> str:
    """Move a complete temp file into ``library_root/YYYY/MM/<name>``; return the relative path.

    The storage template is year/month of when the photo was taken (``unknown/`` when no
    date is known). An existing file is never overwritten: a name that is taken gets
    `` (1)``, `` (2)``… before the extension.
    """
    if taken_at and len(taken_at) >= 7 and taken_at[:4].isdigit() and taken_at[5:7].isdigit():
        folder = PurePosixPath(taken_at[:4], taken_at[5:7])
    else:
        folder = PurePosixPath("unknown")
    target_dir = library_root.joinpath(*folder.parts)
    target_dir.mkdir(parents=True, exist_ok=True)
    name = safe_file_name(original_name)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for n in range(10_000):
        candidate = name if n == 0 else (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
        dest = target_dir / candidate
        if journal is not None:
            journal.note(str(folder / candidate))
        try:
            # link() fails if dest exists, so two uploads can never overwrite each other.
            os.link(tmp_path, dest)
        except FileExistsError:
            continue
        except OSError:
            # Filesystems without hard links (exFAT on a USB disk): check-then-rename, done
            # under the ingest lock by the caller.
            if dest.exists():
                continue
            os.replace(tmp_path, dest)
        else:
            tmp_path.unlink()
        if journal is not None:
            journal.placed = dest
        _fsync_dir(target_dir)
        return str(folder / candidate)
    raise RuntimeError(f"no free file name for {name!r} in {target_dir}")
