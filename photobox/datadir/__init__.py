"""The data folder: its layout, and whether the storage is really there (a missing USB SSD
must not look like an empty library). Its other parts: :mod:`~photobox.datadir.lock` (one
server per folder), :mod:`~photobox.datadir.copy` (the verified database copier),
:mod:`~photobox.datadir.restore` (staged restores) and :mod:`~photobox.datadir.storage`
(originals: temp files, placement, safe names).

The data folder carries a marker file, ``.photobox-data`` (the instance id and when it was
made), written when photobox first creates it. At start, before anything is created:

* a data folder under a mount point listed in ``/etc/fstab`` that is not mounted now (the
  disk is unplugged, the folder is the bare mount point on the SD card) is refused;
* a data folder that has the marker, or originals in ``library/``, but no ``photobox.db``
  is refused: the database is lost, and a fresh empty one would hide that (restore a
  backup, or ``photobox rebuild`` from the files, which says so explicitly);
* a data folder whose parent folder is missing too (an automounted disk that is not
  there) is refused rather than created with all its parents;
* a genuinely new folder (absent or empty, in an existing folder) is created as before.

External library roots are checked the same way while running
(:func:`photobox.library.libraries.library_problems`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from photobox.db import Database

__all__ = ["MARKER", "SUBDIRS", "StorageMissingError", "check_data_dir", "ensure_marker", "library_folder_present",
           "read_marker", "write_marker"]

MARKER = ".photobox-data"
#: The data folder's layout, created at every start (derived files can be deleted and regenerated).
SUBDIRS = ("library", "cache/thumbs", "cache/previews", "cache/video", "cache/motion", "backups", "models", "tmp")


class StorageMissingError(RuntimeError):
    """The data folder is not there, or not the one photobox used before; the message says what to do."""


def _unescape(field: str) -> str:
    # fstab and mountinfo escape spaces and tabs as octal (\040).
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def fstab_targets(fstab: Path = Path("/etc/fstab")) -> list[Path]:
    """Mount points configured in ``fstab`` (not swap, not the root)."""
    targets: list[Path] = []
    try:
        lines = fstab.read_text().splitlines()
    except OSError:
        return targets
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[0].startswith("#") or fields[2] == "swap":
            continue
        target = _unescape(fields[1])
        if target.startswith("/") and target != "/":
            targets.append(Path(target))
    return targets


def mounted(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[Path]:
    """Mount points mounted now."""
    try:
        return {Path(_unescape(line.split()[4])) for line in mountinfo.read_text().splitlines() if line.strip()}
    except OSError:
        return set()


def read_marker(data_dir: Path) -> dict | None:
    try:
        return json.loads((Path(data_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_marker(data_dir: Path, instance_id: str, *, now: float | None = None) -> None:
    """Write the marker (temp name + rename) unless it already names this instance."""
    current = read_marker(data_dir)
    if current and current.get("instance_id") == instance_id:
        return
    path = Path(data_dir) / MARKER
    tmp = path.with_name(MARKER + ".tmp")
    tmp.write_text(json.dumps({"instance_id": instance_id, "created_at": now or time.time(),
                               "about": "photobox data folder: do not delete (photobox checks it is mounted)"}) + "\n")
    os.replace(tmp, path)


def _has_originals(library: Path) -> bool:
    if not library.is_dir():
        return False
    for _root, _dirs, files in os.walk(library):
        if any(not f.startswith(".") for f in files):
            return True
    return False


def check_data_dir(data_dir: Path, *, fstab: Path = Path("/etc/fstab"),
                   mountinfo: Path = Path("/proc/self/mountinfo"), require_existing: bool = False) -> None:
    """Refuse to start on a data folder that is missing rather than new (see module docstring).

    Raises:
        StorageMissingError: with what is wrong and what to do.
    """
    data = Path(data_dir).absolute()
    now_mounted = mounted(mountinfo)
    for target in fstab_targets(fstab):
        if (data == target or data.is_relative_to(target)) and target not in now_mounted:
            raise StorageMissingError(
                f"the data folder {data} is on {target}, which /etc/fstab mounts, but nothing is mounted there now. "
                "Is the USB disk plugged in? Mount it (sudo mount -a) and restart photobox.")
    if not data.exists() and not data.parent.is_dir():
        # An automounted disk (/media/pi/SSD) vanishes with its folder: creating the whole
        # chain again would put a new, empty library on the SD card.
        raise StorageMissingError(
            f"neither the data folder {data} nor the folder above it exists. If they are on a disk, is it "
            f"mounted? For a brand-new library, create {data.parent} first.")
    db = data / "photobox.db"
    if db.exists() or (data / "photobox.db.restore").exists():
        return
    if require_existing:
        raise StorageMissingError(
            f"there is no photobox.db in {data}, and the setting require_existing_data says one must exist. "
            "Is the disk mounted? (To start a new library there, turn the setting off.)")
    if read_marker(data) is not None:
        raise StorageMissingError(
            f"{data} held a photobox (it has the {MARKER} marker) but photobox.db is missing. If the disk is "
            "mounted, restore a backup (`photobox restore FILE`, e.g. from backups/) or rebuild the database "
            "from the files (`photobox rebuild`).")
    if _has_originals(data / "library"):
        raise StorageMissingError(
            f"{data}/library holds originals but there is no photobox.db. Restore a backup "
            "(`photobox restore FILE`) or rebuild the database from the files (`photobox rebuild`).")


def ensure_marker(data_dir: Path, db: Database, *, now: float) -> str:
    """Give the instance an id (``meta.instance_id``) and write the marker into the data folder."""
    import secrets

    from photobox.db.sql import meta_value

    with db.transaction() as conn:
        instance_id = meta_value(conn, "instance_id", lambda: secrets.token_hex(8))
    write_marker(data_dir, instance_id, now=now)
    return instance_id


def library_folder_present(root: Path) -> bool:
    """Whether an external library folder is there and not an empty mount point. (A library
    that is really empty has nothing to scan either, so pausing its scans loses nothing.)"""
    try:
        return root.is_dir() and any(os.scandir(root))
    except OSError:
        return False
