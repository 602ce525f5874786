"""One writer, many readers, as Datasette's ``database.py`` and bugsink's ``transaction.py`` do.

SQLite allows one writer at a time. Rather than let threads race for the write lock and
retry on ``SQLITE_BUSY``, every write in this process goes through one connection guarded
by a lock and starts with ``BEGIN IMMEDIATE``, so it takes the file's write lock up front
(a deferred transaction that upgrades later can fail with BUSY without waiting: see
https://sqlite.org/lang_transaction.html). Other processes (the CLI) wait on the busy timeout.

Readers come from a small pool of read-only connections; in WAL mode they never block the
writer nor each other. The async helpers run the SQL in threads (apsw releases the GIL
while SQLite works) so the event loop stays free.

Read-only reference files (the places file) are ATTACHed to every connection under a
schema name. Such a file is replaced by renaming a new one over it, never written in place,
so each connection checks the file's identity when it is checked out (one ``stat``) and
re-attaches after a swap; until then it reads the old file, which stays whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import apsw

from photobox.db.connection import connect
from photobox.db.migrate import MIGRATIONS_DIR, migrate, refuse_newer

__all__ = ["Database", "LimitedReader", "QueryTimeout"]

T = TypeVar("T")


#: The schema names reference files may be attached under, with their constant SQL.
_ATTACH_SQL = {"geo": ("ATTACH DATABASE ? AS geo", "DETACH DATABASE geo")}


class QueryTimeout(RuntimeError):
    """A query ran past its time limit and was interrupted."""


class LimitedReader:
    """Reads of one :class:`Database` that all run under a time limit (Datasette's
    ``sql_time_limit_ms``, whose per-query ``custom_time_limit`` may only lower it).

    ``await reader(fn, *args)`` runs ``fn(conn, *args)`` in a reader thread, and ``with
    reader.connection() as conn`` gives a connection to code already in a thread; both take
    ``limit_ms`` to ask for less time. A caller can never ask for more: the limit is what
    keeps one slow page from starving a Pi's few reader threads.
    """

    __slots__ = ("db", "limit_ms")

    def __init__(self, db: Database, limit_ms: int) -> None:
        self.db = db
        self.limit_ms = limit_ms

    def _within(self, limit_ms: int | None) -> int:
        return self.limit_ms if limit_ms is None else min(limit_ms, self.limit_ms)

    async def __call__(self, fn: Callable[..., T], *args: Any, limit_ms: int | None = None) -> T:
        """``fn(conn, *args)`` on a reader in a thread, interrupted after the limit (:class:`QueryTimeout`)."""
        return await self.db.read(fn, *args, time_limit_ms=self._within(limit_ms))

    def connection(self, limit_ms: int | None = None) -> contextlib.AbstractContextManager[apsw.Connection]:
        """A reader connection (from a thread) whose statements stop after the limit."""
        return self.db.reader(self._within(limit_ms))


class Database:
    """The photobox database file: a write connection, a reader pool and migrations.

    Use :meth:`transaction` / :meth:`reader` from threads (jobs, CLI) and
    :meth:`write` / :meth:`read` from async code (web handlers, scheduler).
    """

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000, readers: int = 4,
                 attach: dict[str, Path] | None = None) -> None:
        self.path = Path(path)
        #: Schema name → read-only database file ATTACHed to every connection (when it exists).
        self.attach = dict(attach or {})
        if unknown := set(self.attach) - set(_ATTACH_SQL):
            raise ValueError(f"no ATTACH statement for {sorted(unknown)}")
        self._attached: dict[int, dict[str, tuple | None]] = {}
        self._busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.RLock()
        self._writer: apsw.Connection | None = None
        self._readers: queue.LifoQueue[apsw.Connection] = queue.LifoQueue()
        self._reader_count = 0
        self._max_readers = max(1, readers)
        self._reader_lock = threading.Lock()
        self._read_pool = ThreadPoolExecutor(max_workers=self._max_readers, thread_name_prefix="db-read")
        self._write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-write")
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def open(
        self,
        migrations: Path = MIGRATIONS_DIR,
        before_upgrade: Callable[[apsw.Connection, int, int], None] | None = None,
    ) -> Database:
        """Open the write connection and bring the schema up to date (see :mod:`.migrate`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_newer(self.path, migrations)  # before a writable open touches a newer photobox's file
        self._writer = connect(self.path, busy_timeout_ms=self._busy_timeout_ms)
        with self._write_lock:
            migrate(self._writer, migrations, before_upgrade=before_upgrade)
            self._refresh_attached(self._writer)
        return self

    def _refresh_attached(self, conn: apsw.Connection) -> None:
        """(Re-)ATTACH each reference file whose identity changed since ``conn`` attached it
        (installed, replaced or removed); called outside any transaction."""
        if not self.attach:
            return
        seen = self._attached.setdefault(id(conn), {})
        for alias, path in self.attach.items():
            try:
                st = os.stat(path)
                ident = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                ident = None
            if seen.get(alias) == ident:
                continue
            attach_sql, detach_sql = _ATTACH_SQL[alias]
            try:
                if seen.get(alias) is not None:
                    conn.execute(detach_sql)
                    seen[alias] = None
                if ident is not None:
                    # Read-only, by URI: the file is only ever replaced whole (see the module doc).
                    conn.execute(attach_sql, (f"file:{quote(str(path))}?mode=ro",))
                    seen[alias] = ident
            except apsw.Error:  # a statement still open on it: keep reading the old file, retry next time
                continue

    def close(self) -> None:
        """Close all connections; waits for running statements in the pools to finish."""
        if self._closed:
            return
        self._closed = True
        self._attached.clear()
        self._read_pool.shutdown(wait=True)
        self._write_pool.shutdown(wait=True)
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break
        if self._writer is not None:
            with self._write_lock:
                # Fold the WAL back into the main file so a copied folder is self-contained.
                with contextlib.suppress(apsw.Error):
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._writer.close()
            self._writer = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- synchronous API (threads) ---------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[apsw.Connection]:
        """A write transaction on the single writer: ``BEGIN IMMEDIATE`` … ``COMMIT``.

        Keep it short: every other writer in the process waits for it. Nested use in the
        same thread joins the outer transaction through a savepoint.

        ``durable``: the commit is on disk when this returns, even across a power cut
        (``synchronous=FULL`` for this one commit). WAL with ``synchronous=NORMAL``, used for
        everything else, is crash-safe but may lose the last commits when the power goes — fine
        for jobs that re-run, not for an upload whose 201 lets a phone delete its copy, or for
        the owner account.
        """
        if self._writer is None:
            raise RuntimeError("database is not open")
        with self._write_lock:
            conn = self._writer
            if not conn.in_transaction:
                self._refresh_attached(conn)
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                else:
                    conn.execute("COMMIT")
                finally:
                    if durable:
                        conn.execute("PRAGMA synchronous=NORMAL")
            else:
                with conn:  # savepoint inside the outer transaction
                    yield conn

    @contextlib.contextmanager
    def reader(self, time_limit_ms: int | None = None) -> Iterator[apsw.Connection]:
        """A read-only connection from the pool, optionally with a query time limit.

        The limit uses SQLite's progress handler (Datasette's ``sqlite_timelimit``): after
        ``time_limit_ms`` the running statement is interrupted and :class:`QueryTimeout` raised.
        """
        conn = self._checkout()
        self._refresh_attached(conn)
        deadline = None
        if time_limit_ms is not None:
            deadline = time.monotonic() + time_limit_ms / 1000

            def handler() -> bool:
                return time.monotonic() > deadline

            conn.set_progress_handler(handler, 1000)
        try:
            yield conn
        except apsw.InterruptError as exc:
            raise QueryTimeout(f"query interrupted after {time_limit_ms} ms") from exc
        finally:
            if deadline is not None:
                conn.set_progress_handler(None)
            self._readers.put(conn)

    def _checkout(self) -> apsw.Connection:
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            pass
        with self._reader_lock:
            if self._reader_count < self._max_readers * 2:
                self._reader_count += 1
                return connect(self.path, busy_timeout_ms=self._busy_timeout_ms, readonly=True)
        return self._readers.get()

    def execute_write(self, sql: str, params: Any = ()) -> None:
        """Run one write statement in its own transaction."""
        with self.transaction() as conn:
            conn.execute(sql, params)

    # -- async API (event loop) ------------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any, time_limit_ms: int | None = None) -> T:
        """Run ``fn(conn, *args)`` on a reader in a thread and return its result."""

        def run() -> T:
            with self.reader(time_limit_ms) as conn:
                return fn(conn, *args)

        return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = False) -> T:
        """Run ``fn(conn, *args)`` inside one write transaction on the writer thread
        (``durable``: see :meth:`transaction`)."""

        def run() -> T:
            with self.transaction(durable=durable) as conn:
                return fn(conn, *args)

        return await asyncio.get_running_loop().run_in_executor(self._write_pool, run)
