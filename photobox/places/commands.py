"""``photobox places install`` and ``photobox places status``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from photobox.core import Photobox
from photobox.hints import command
from photobox.places.data import DEFAULT_SOURCE, ChecksumMismatch
from photobox.places.geocoder import installed
from photobox.settings import Settings

__all__ = ["add_commands", "cmd_install", "cmd_status", "doctor_check"]


def cmd_install(settings: Settings, out: TextIO, *, source: Path | None = None, sha256: str | None = None,
                force: bool = False, wait: bool = True) -> int:
    """Download (or read ``source``), verify and load the gazetteer, then geocode the library."""
    from photobox.places.jobs import geocode_pending, install

    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            current = installed(conn)
        fresh = force or current is None or current.get("sha256") != DEFAULT_SOURCE.sha256
        if source is None and fresh:
            print(f"downloading {DEFAULT_SOURCE.name}\n  from {DEFAULT_SOURCE.url}\n  sha256 {DEFAULT_SOURCE.sha256}",
                  file=out, flush=True)
        try:
            info = install(box, path=source, sha256=sha256, force=force)
        except ChecksumMismatch as exc:
            print(f"photobox: {exc}", file=out)
            return 1
        except (OSError, ValueError) as exc:
            print(f"photobox: cannot install the places data: {exc}", file=out)
            return 1
        if info.get("already"):
            print(f"already installed: {info['cities']} cities from {info['source']} (use --force to reload)", file=out)
        else:
            print(f"installed {info['cities']} cities from {info['source']} ({info['licence']})", file=out)
        if wait:
            started = time.perf_counter()
            done = geocode_pending(box)
            print(f"geocoded {done} photo(s) in {time.perf_counter() - started:.1f} s", file=out)
        else:
            print("photos are geocoded by the running server", file=out)
    finally:
        box.close()
    return 0


def cmd_status(settings: Settings, out: TextIO) -> int:
    """What gazetteer is installed and how many photos have a place."""
    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            info = installed(conn)
            gps, placed, none = conn.execute(
                "SELECT (SELECT count(*) FROM assets WHERE latitude IS NOT NULL), "
                "(SELECT count(*) FROM asset_places WHERE place_id IS NOT NULL), "
                "(SELECT count(*) FROM asset_places WHERE place_id IS NULL)").fetchone()
    finally:
        box.close()
    if info is None:
        print(f"places data: not installed (run `{command(settings.data_dir, 'places', 'install')}`)", file=out)
    else:
        print(f"places data: {info['cities']} cities from {info['source']} (sha256 {info['sha256'][:12]}…), "
              f"{info['licence']}", file=out)
    print(f"photos with GPS: {gps}; with a place: {placed}; no town within range: {none}", file=out)
    return 0


def doctor_check(settings: Settings) -> tuple[str, str]:
    """``photobox doctor``'s line: is the gazetteer installed (a read-only look at the places file)."""
    from photobox.places.gazetteer import FILE_NAME, file_info

    info = file_info(settings.db_path.with_name(FILE_NAME))
    if info is None:
        return "WARN", (f"not installed ({FILE_NAME} is not in the data folder): photos get no town or country "
                        f"(run `{command(settings.data_dir, 'places', 'install')}`)")
    return "OK", f"{info['cities']} towns from {info['source']} ({FILE_NAME}, not in backups)"


def add_commands(commands) -> None:
    """``photobox places install|status`` (``commands`` is a :class:`photobox.cli.common.Commands`)."""
    from photobox.cli.common import settings_from

    places = commands.group("places", "offline places (reverse geocoding of GPS positions)")
    inst = places.add("install", "download (sha256-checked) and load the GeoNames cities data into places.db (not "
                      "part of backups), then geocode photos",
                      lambda a: cmd_install(settings_from(a), _stdout(), source=a.source, sha256=a.sha256,
                                            force=a.force, wait=not a.no_wait))
    inst.add_argument("--from", dest="source", type=Path, default=None,
                      help="load this file instead of downloading (the pinned archive, or a cities CSV with --sha256)")
    inst.add_argument("--sha256", default=None, help="expected sha256 of the --from file (default: the pinned one)")
    inst.add_argument("--force", action="store_true", help="load again even when the same data is installed")
    inst.add_argument("--no-wait", action="store_true", help="leave geocoding of the library to the running server")
    places.add("status", "show the installed places data and how many photos have a place",
               lambda a: cmd_status(settings_from(a), _stdout()))


def _stdout() -> TextIO:
    import sys

    return sys.stdout

