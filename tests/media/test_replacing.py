"""photobox.media._stale.replacing: the one write-to-temp-then-rename that thumbnails and video renditions share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from photobox.media import _stale


def test_success_renames_over_the_target(tmp_path):
    dst = tmp_path / "cache" / "a" / "thumb.webp"  # folders are created
    with _stale.replacing(dst) as tmp:
        assert tmp.parent == dst.parent and tmp.name.startswith(".thumb.webp.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"new")
        assert not dst.exists()
    assert dst.read_bytes() == b"new" and list(dst.parent.iterdir()) == [dst]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    dst = tmp_path / "preview.jpg"
    dst.write_bytes(b"old")
    for exc in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), _stale.replacing(dst) as tmp:
            tmp.write_bytes(b"half")
            raise exc
        assert dst.read_bytes() == b"old" and list(tmp_path.iterdir()) == [dst]
    with pytest.raises(RuntimeError), _stale.replacing(dst):
        raise RuntimeError("failed before writing anything")  # no temp file to remove: no second error
    assert list(tmp_path.iterdir()) == [dst]


def test_temp_files_of_dead_processes_are_removed_first(tmp_path):
    dst = tmp_path / "video.mp4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    stale = tmp_path / f".video.mp4.{dead}-1.tmp"
    stale.write_bytes(b"left by a killed run")
    mine = tmp_path / f".video.mp4.{os.getpid()}-999.tmp"  # this process's: never touched
    mine.write_bytes(b"in progress")
    with _stale.replacing(dst) as tmp:
        assert not stale.exists() and mine.exists()
        tmp.write_bytes(b"done")
    assert dst.read_bytes() == b"done"

