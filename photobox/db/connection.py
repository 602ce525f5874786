"""Open every SQLite connection through one function, as Datasette's ``prepare_connection`` does.

Each connection loads sqlite-vec and gets the same pragmas, so the CLI, the web app and
the job workers all see the same database behaviour.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import sqlite_vec

__all__ = ["connect", "read_file"]


def connect(path: Path | str, *, busy_timeout_ms: int = 5000, readonly: bool = False) -> apsw.Connection:
    """Open ``path`` with sqlite-vec loaded and photobox's pragmas applied.

    WAL lets readers run while the single writer commits; ``synchronous=NORMAL`` is
    durable across application crashes and, in WAL mode, loses at most the last
    transactions on a power cut, never corrupts (https://sqlite.org/wal.html).

    Args:
        path: the database file (created when missing unless ``readonly``).
        busy_timeout_ms: how long to wait for another process's lock.
        readonly: open read-only (the web readers and ``photobox doctor``).
    """
    flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(str(path), flags=flags | apsw.SQLITE_OPEN_URI)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    conn.set_busy_timeout(busy_timeout_ms)
    if not readonly:
        # journal_mode is persistent in the file; setting it needs a writable connection.
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")
    # 16 MiB page cache per connection: enough for index pages of a 500k-asset library,
    # small enough for five connections on a 1 GiB Pi.
    conn.execute("PRAGMA cache_size=-16000")
    conn.execute("PRAGMA mmap_size=134217728")
    return conn


def read_file(path: Path | str, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows of one query on a database file, read-only (``photobox doctor``'s checks run
    without opening the data folder, so a broken one can still be diagnosed)."""
    conn = connect(path, readonly=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
