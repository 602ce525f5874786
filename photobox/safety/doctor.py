"""``photobox doctor`` lines about keeping a library safe: storage present, backups recent,
library folders mounted, integrity findings. Each is ``fn(settings) -> (level, detail)``; the
features that own them declare them (``@feature.check``)."""

from __future__ import annotations

import time
from pathlib import Path

from photobox.hints import command  # hints that work as typed
from photobox.settings import Settings

__all__ = ["check_backups", "check_integrity", "check_library_folders", "check_storage"]


def _read_db(settings: Settings, sql: str, params=()) -> list[tuple]:
    from photobox.db import connect

    conn = connect(settings.db_path, readonly=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()




def check_storage(settings: Settings) -> tuple[str, str]:
    """Is the data folder there, and is it photobox's (not an empty mount point)?"""
    data = settings.data_dir.resolve()
    from photobox.datadir import StorageMissingError, check_data_dir, read_marker

    try:
        check_data_dir(data, require_existing=settings.require_existing_data)
    except StorageMissingError as exc:
        return "FAIL", f"storage missing: {exc}"
    marker = read_marker(data)
    if marker is None:
        if settings.db_path.exists():
            return "OK", f"{data} (the .photobox-data marker is written at the next start)"
        return "WARN", f"{data} has no photobox yet (a new library is created on first start)"
    return "OK", f"{data} is a photobox data folder (instance {marker.get('instance_id')})"


def check_backups(settings: Settings) -> tuple[str, str]:
    """A recent scheduled backup, or a staged restore waiting for the next start."""
    data = settings.data_dir.resolve()
    from photobox.safety.backups import list_backups
    from photobox.datadir.restore import staged_info

    staged = staged_info(data)
    found = [b for b in list_backups(data / "backups") if b.scheduled]
    if staged:
        return "WARN", "a restore is staged: it replaces the database at the next start"
    if not found:
        if not settings.db_path.exists():
            return "OK", "no database yet"
        return "WARN", f"no backup yet (one is made automatically, or run `{command(data, 'backup')}`)"
    age_h = (time.time() - found[0].created_at) / 3600
    level = "WARN" if settings.backup_interval_hours and age_h > 2 * settings.backup_interval_hours + 1 else "OK"
    return level, f"{len(found)} backup(s) in {data / 'backups'}, the newest {age_h:.1f} h old ({found[0].name})"


def check_library_folders(settings: Settings) -> tuple[str, str]:
    """Every external library folder is present."""
    if not settings.db_path.exists():
        return "OK", "no database yet"
    rows = _read_db(settings, "SELECT name, root FROM libraries WHERE kind = 'external' ORDER BY id")
    missing = [f"{name} ({root})" for name, root in rows if not Path(root).is_dir()]
    if missing:
        return "FAIL", "storage missing: " + ", ".join(missing) + " (mount them; their scans wait meanwhile)"
    return "OK", f"{len(rows)} external library folder(s) present"


def check_integrity(settings: Settings) -> tuple[str, str]:
    """Open findings of the integrity check (missing, changed or orphaned files)."""
    data = settings.data_dir.resolve()
    if not settings.db_path.exists():
        return "OK", "no database yet"
    tables = {n for (n,) in _read_db(settings, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "integrity_issues" not in tables:
        return "OK", "not checked yet (the database is upgraded at the next start)"
    counts = dict(_read_db(settings, "SELECT kind, count(*) FROM integrity_issues WHERE resolved_at IS NULL "
                                     "GROUP BY kind"))
    if counts:
        return "WARN", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + \
            " file(s) found by the integrity check (see Settings → Library health or " \
            f"`{command(data, 'verify')}`)"
    return "OK", "no findings"
