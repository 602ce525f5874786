"""Numbered ``.sql`` migrations, applied in order at startup and recorded in ``user_version``.

Files are named ``NNNN_description.sql`` in ``photobox/db/migrations/``. Each runs in the
same transaction as the ``PRAGMA user_version`` bump that records it (sqlite-utils'
``migrations.py`` does the same), so a crash leaves the schema at a whole version. A
migration that moves data to another file has a data step (:data:`DATA_STEPS`) that runs
just before its SQL, outside the transaction; it must be safe to run again (a crash after
it and before the SQL's commit runs it again at the next start). When an upgrade leaves
most of the file free (a dropped table), it is compacted with VACUUM, since backups copy
free pages too.
A database with a higher version than this code knows is refused, as rclip's ``db.py``
does: an older photobox must not write to a newer schema. Never edit an applied migration;
add the next number instead.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apsw

from photobox.db.sql import scalar

__all__ = ["MIGRATIONS_DIR", "Migration", "SchemaTooNewError", "available", "migrate", "refuse_newer",
           "schema_version"]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Data steps by migration name: ``"module:function"``, called with the connection before
#: that migration's SQL (imported only when the migration is pending).
DATA_STEPS = {"places_file": "photobox.places.gazetteer:move_out_of_main"}
#: VACUUM after an upgrade when at least this share of the file is free pages.
_COMPACT_SHARE = 0.25


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer photobox than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, in order; raises if numbers are missing or repeated."""
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise RuntimeError(f"migrations in {directory} must be numbered 1..N without gaps: {[m.path.name for m in found]}")
    return found


def _too_new(current: int, latest: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"this database has schema version {current}, but this photobox only knows up to {latest}: "
        "it was written by a newer photobox. Upgrade photobox, or restore a backup made by this version."
    )


def refuse_newer(path: Path, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise :class:`SchemaTooNewError` if the database file at ``path`` is newer than this code.

    Reads through a read-only connection, before anything opens the file for writing: a
    writable open already switches the journal mode, and a downgrade must leave a newer
    photobox's database exactly as it was. A missing file passes (it will be created).
    """
    if not Path(path).exists():
        return
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        current = schema_version(conn)
    finally:
        conn.close()
    migrations = available(directory)
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise _too_new(current, latest)


def schema_version(conn: apsw.Connection) -> int:
    """The number of the last migration applied to ``conn``'s database."""
    return int(scalar(conn, "PRAGMA user_version"))


def migrate(
    conn: apsw.Connection,
    directory: Path = MIGRATIONS_DIR,
    *,
    before_upgrade: Callable[[apsw.Connection, int, int], None] | None = None,
) -> list[Migration]:
    """Apply every migration newer than the database's version; return those applied.

    Args:
        conn: a writable connection.
        directory: where the ``NNNN_name.sql`` files are (tests pass an older set).
        before_upgrade: called with (conn, current, target) before changing an existing,
            non-empty database, so the caller can take a backup first.

    Raises:
        SchemaTooNewError: the database is newer than the newest migration here.
    """
    migrations = available(directory)
    latest = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current > latest:
        raise _too_new(current, latest)
    pending = [m for m in migrations if m.version > current]
    if pending and current > 0 and before_upgrade is not None:
        before_upgrade(conn, current, latest)
    for migration in pending:
        sql = migration.path.read_text()
        if migration.name in DATA_STEPS and current > 0:
            module, _, function = DATA_STEPS[migration.name].partition(":")
            getattr(importlib.import_module(module), function)(conn)
        with conn:  # a savepoint: the DDL and the version bump commit together or not at all
            conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
            conn.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
    if pending and current > 0:
        _compact_if_mostly_free(conn)
    return pending


def _compact_if_mostly_free(conn: apsw.Connection) -> None:
    """VACUUM when an upgrade freed most of the file (free pages are copied by every backup
    and, in a small library, would not be reused for a long time)."""
    pages = scalar(conn, "PRAGMA page_count")
    free = scalar(conn, "PRAGMA freelist_count")
    if pages and free / pages >= _COMPACT_SHARE:
        try:
            conn.execute("VACUUM")
        except apsw.Error as exc:  # e.g. no room for the copy VACUUM makes: the free pages get reused later
            log.warning("could not compact the database after the upgrade: %s", exc)
