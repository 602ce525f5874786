"""``photobox doctor`` lines about keeping a library safe: storage present, backups recent,
library folders mounted, integrity findings. Each is ``fn(settings) -> (level, detail)``; the
features that own them declare them (``@feature.check``)."""

from __future__ import annotations

import time

from photobox.db.connection import read_file
from photobox.hints import command  # hints that work as typed
from photobox.settings import Settings

__all__ = ["check_backups", "check_integrity"]


def check_backups(settings: Settings) -> tuple[str, str]:
    """A recent scheduled backup, or a staged restore waiting for the next start."""
    data = settings.data_dir.resolve()
    from photobox.datadir.restore import staged_info
    from photobox.safety.backups import list_backups

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


def check_integrity(settings: Settings) -> tuple[str, str]:
    """Open findings of the integrity check (missing, changed or orphaned files)."""
    data = settings.data_dir.resolve()
    if not settings.db_path.exists():
        return "OK", "no database yet"
    tables = {n for (n,) in read_file(settings.db_path, "SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "integrity_issues" not in tables:
        return "OK", "not checked yet (the database is upgraded at the next start)"
    counts = dict(read_file(settings.db_path, "SELECT kind, count(*) FROM integrity_issues WHERE resolved_at IS NULL "
                                     "GROUP BY kind"))
    if counts:
        return "WARN", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + \
            " file(s) found by the integrity check (see Settings → Library health or " \
            f"`{command(data, 'verify')}`)"
    return "OK", "no findings"
