"""External libraries: indexed in place, cheap rescans, moves, vanished files, missing mounts."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from photobox.library import libraries
from photobox.library.libraries import scan_library
from tests.gen import jpeg_bytes, png_bytes


def run_jobs(box):
    asyncio.run(box.scheduler.run_until_idle())


@pytest.fixture
def share(tmp_path):
    root = tmp_path / "nas"
    (root / "2019" / "summer").mkdir(parents=True)
    (root / "@eaDir").mkdir()
    (root / "2019" / "summer" / "a.jpg").write_bytes(jpeg_bytes(seed=1))
    (root / "2019" / "summer" / "b.jpg").write_bytes(jpeg_bytes(seed=2))
    (root / "2019" / "c.png").write_bytes(png_bytes())
    (root / "2019" / "notes.txt").write_text("not media")
    (root / "@eaDir" / "a.jpg").write_bytes(jpeg_bytes(seed=99))  # Synology thumbnails: excluded
    (root / ".hidden.jpg").write_bytes(jpeg_bytes(seed=98))
    (root / "bad.jpg").write_bytes(b"<html>no</html>")
    return root


def add(box, root, **kw):
    with box.db.transaction() as conn:
        return libraries.add_library(conn, root, now=box.clock(), data_dir=box.data_dir, **kw)


def asset_paths(box):
    with box.db.reader() as conn:
        return {p: (off, lib) for p, off, lib in conn.execute("SELECT rel_path, offline, library_id FROM assets")}


def snapshot(root):
    return {p: (p.stat().st_mtime, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_scan_indexes_in_place_and_never_writes(box, share):
    before = snapshot(share)
    lib = add(box, share)
    stats = scan_library(box, lib)
    assert stats["seen"] == 5 and stats["new"] == 4  # a, b, c, bad (+ notes.txt, skipped); not @eaDir, hidden
    assert stats["skipped"] == 1
    run_jobs(box)
    assert set(asset_paths(box)) == {"2019/summer/a.jpg", "2019/summer/b.jpg", "2019/c.png"}
    with box.db.reader() as conn:
        state, error = conn.execute("SELECT state, error FROM library_files WHERE rel_path='bad.jpg'").fetchone()
    assert state == "error" and "not a photo or video" in error
    assert snapshot(share) == before, "an external library must never be modified"
    assert not any(box.path("library").rglob("*.*")), "indexed in place, not copied"


def test_rescan_skips_unchanged_and_picks_up_changes(box, share):
    lib = add(box, share)
    scan_library(box, lib)
    run_jobs(box)
    stats = scan_library(box, lib)
    # notes.txt (skipped at the walk) and bad.jpg (not media, found by ingest): not read again.
    assert stats == {"seen": 5, "new": 0, "changed": 0, "unchanged": 5, "skipped": 2, "vanished": 0}
    # Edited in place: same asset, new checksum, derived files made again.
    target = share / "2019" / "summer" / "a.jpg"
    target.write_bytes(jpeg_bytes(seed=42))
    os.utime(target, (1_700_000_000, 1_700_000_000))
    (share / "2019" / "d.jpg").write_bytes(jpeg_bytes(seed=7))
    stats = scan_library(box, lib)
    assert (stats["new"], stats["changed"], stats["unchanged"]) == (1, 1, 4)
    run_jobs(box)
    assert len(asset_paths(box)) == 4


def test_moved_file_keeps_its_asset_and_vanished_goes_offline(box, share):
    lib = add(box, share)
    scan_library(box, lib)
    run_jobs(box)
    with box.db.reader() as conn:
        (a_id,) = conn.execute("SELECT id FROM assets WHERE rel_path='2019/summer/a.jpg'").fetchone()
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET favorite = 1 WHERE id = ?", (a_id,))
    (share / "2020").mkdir()
    shutil.move(share / "2019" / "summer" / "a.jpg", share / "2020" / "a-renamed.jpg")
    (share / "2019" / "summer" / "b.jpg").unlink()
    stats = scan_library(box, lib)
    run_jobs(box)
    stats2 = scan_library(box, lib)  # the move is settled by the second pass at the latest
    run_jobs(box)
    assert stats["vanished"] == 2 and stats2["vanished"] == 0
    paths = asset_paths(box)
    with box.db.reader() as conn:
        rel, fav, offline = conn.execute("SELECT rel_path, favorite, offline FROM assets WHERE id=?", (a_id,)).fetchone()
    assert (rel, fav, offline) == ("2020/a-renamed.jpg", 1, 0), "a moved file keeps its asset"
    assert paths["2019/summer/b.jpg"][0] == 1, "a vanished file's asset is offline, not deleted"


def test_missing_mount_is_not_an_empty_library(box, share, tmp_path):
    lib = add(box, share)
    scan_library(box, lib)
    run_jobs(box)
    moved = tmp_path / "unmounted"
    share.rename(moved)
    with pytest.raises(RuntimeError, match="missing"):
        scan_library(box, lib)
    share.mkdir()  # an empty mount point
    with pytest.raises(RuntimeError, match="looks empty"):
        scan_library(box, lib)
    assert not any(off for off, _ in asset_paths(box).values())


def test_library_overlaps_are_refused(box, share):
    add(box, share)
    with pytest.raises(ValueError, match="overlaps"):
        add(box, share / "2019")
    with pytest.raises(ValueError, match="data folder"):
        add(box, box.data_dir)


def test_duplicates_across_libraries_are_not_new_assets(box, share, tmp_path):
    lib = add(box, share)
    scan_library(box, lib)
    run_jobs(box)
    second = tmp_path / "usb"
    second.mkdir()
    shutil.copy(share / "2019" / "c.png", second / "copy-of-c.png")
    lib2 = add(box, second)
    scan_library(box, lib2)
    run_jobs(box)
    assert len(asset_paths(box)) == 3
    with box.db.reader() as conn:
        assert conn.execute("SELECT state FROM library_files WHERE rel_path='copy-of-c.png'").fetchone() == ("duplicate",)


def test_scan_job_is_scheduled_and_periodic(box, share):
    add(box, share, scan_minutes=1)
    asyncio.run(libraries.queue_due_scans(box))
    run_jobs(box)
    assert len(asset_paths(box)) == 3


def test_scan_takes_photos_without_a_media_extension_and_lists_what_it_skips(box, share):
    """A JPEG named IMG_1 (no extension) or .iiq is sniffed, not silently left out; every file
    that is not a photo or video is listed with its reason and not read again by a rescan."""
    (share / "IMG_1").write_bytes(jpeg_bytes(seed=5))
    (share / "shot.iiq").write_bytes(jpeg_bytes(seed=6))  # a RAW extension photobox has no reader list for
    (share / "README").write_text("holiday photos from grandpa")
    (share / "2019" / "page.dat").write_bytes(b"%PDF-1.4 not a photo")
    lib = add(box, share)
    stats = scan_library(box, lib)
    run_jobs(box)
    paths = set(asset_paths(box))
    assert {"IMG_1", "shot.iiq"} <= paths
    with box.db.reader() as conn:
        skipped = dict(libraries.skipped_files(conn, lib))
    assert set(skipped) == {"2019/notes.txt", "2019/page.dat", "README", "bad.jpg"}
    assert skipped["README"] == ("not a photo or video: it has no extension, and it holds content photobox "
                                 "does not recognise")
    assert skipped["2019/page.dat"] == "not a photo or video: its extension .dat is not a photo or video one, and it holds PDF"
    assert "not a photo or video" in skipped["bad.jpg"]
    assert stats["skipped"] == 3  # bad.jpg is found by ingest, after the walk
    assert scan_library(box, lib)["skipped"] == 4
    (share / "README").write_bytes(jpeg_bytes(seed=8))  # replaced by a photo: picked up
    os.utime(share / "README", (1_700_000_000, 1_700_000_000))
    stats = scan_library(box, lib)
    run_jobs(box)
    assert stats["changed"] == 1 and stats["skipped"] == 3 and "README" in asset_paths(box)
