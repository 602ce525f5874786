"""Online copies of photobox.db with SQLite's backup API (never a file copy of a live DB)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import apsw

__all__ = ["backup_database"]


def backup_database(conn: apsw.Connection, dest: Path, *, pages_per_step: int = 1024) -> Path:
    """Copy the database behind ``conn`` to ``dest`` consistently while it stays in use.

    Writes ``dest`` under a temporary name and renames it when complete, so a crash never
    leaves a half-written backup that looks whole.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    target = apsw.Connection(str(tmp))
    try:
        with target.backup("main", conn, "main") as step:
            while not step.done:
                step.step(pages_per_step)
                if not step.done:
                    time.sleep(0)  # let writers in between steps
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    return dest
