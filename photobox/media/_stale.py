"""Temp files of derived files (thumbnails, previews, renditions) left by a killed process."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from photobox.procs import process_alive

__all__ = ["remove_stale_temps", "replacing"]


def remove_stale_temps(path: Path) -> int:
    """Remove ``.<name>.<pid>-<thread>.tmp`` siblings of ``path`` left by a dead process.

    Derived files (thumbnails, previews, video renditions) are written to such a temp name and
    renamed; a process killed mid-write leaves its temp file. The job that writes ``path`` again
    after the restart calls this first, so the leak heals where it happened, without walking
    the whole cache at start-up. Temp files of live processes (a CLI next to the server) stay.
    """
    removed = 0
    try:
        siblings = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return 0
    for tmp in siblings:
        pid_text = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        if process_alive(int(pid_text)):
            continue  # a live writer (or a reused pid): leave it
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` to write; renamed over ``path`` if the block succeeds, removed if not.

    Same folder so ``os.replace`` is an atomic rename on one filesystem; unique name (pid +
    thread) so two workers racing on the same file cannot write into each other's temp file;
    the temp files of killed earlier runs are removed first (tests/test_crash.py).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
